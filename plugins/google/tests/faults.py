"""A forwarding HTTP proxy in front of a real emulator that answers chosen requests with recorded GCS errors.

The emulators never answer 403, 429 or 503; the proxy gives the real client those answers (bodies from
``data/error_*.json``) for the requests a rule matches, and passes everything else to the emulator unchanged
(except resumable-session URLs in ``Location``, which it points at itself so the pieces pass through it too).
"""

from __future__ import annotations

import dataclasses
import http.client
import pathlib
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA = pathlib.Path(__file__).resolve().parent / "data"


@dataclasses.dataclass
class Rule:
    method: str
    path: str  # a regular expression searched in the request's path and query
    status: int
    times: int = 1 << 30
    hits: int = 0


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.upstream_url = upstream.rstrip("/")
        self.rules: list[Rule] = []
        self.seen: list[tuple[str, str, int]] = []
        self.authorizations: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.authorizations.append(self.headers.get("Authorization", ""))
                rule = proxy._match(self.command, self.path)
                if rule is not None:
                    payload = (DATA / f"error_{rule.status}.json").read_bytes()
                    self._answer(rule.status, [("Content-Type", "application/json; charset=UTF-8")], payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    kept = [(k, v.replace(proxy.upstream_url, proxy.url) if k.lower() == "location" else v)
                            for k, v in resp.getheaders()
                            if k.lower() not in ("transfer-encoding", "connection", "content-length")]
                    self._answer(resp.status, kept, data)
                finally:
                    conn.close()
                with proxy._lock:
                    proxy.seen.append((self.command, self.path, resp.status))

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hangs up (a timed-out or abandoned request) is not news

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def fail(self, method: str, path: str, status: int, times: int = 1 << 30) -> Rule:
        rule = Rule(method, path, status, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _match(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.method == method and rule.hits < rule.times and re.search(rule.path, path):
                    rule.hits += 1
                    self.seen.append((method, path, rule.status))
                    return rule
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
