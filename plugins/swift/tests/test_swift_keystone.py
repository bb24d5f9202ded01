"""Keystone v2/v3 (single_user) and per_user auth against the real Swift.

No Keystone runs here, so Keystone is a tiny local HTTP server replaying recorded token responses (``data/``) whose
catalog points at the real Swift; the token it hands out is a real tempauth token, so every request that reaches
Swift is really authorised by it.
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import pathlib
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from clitools import BIN, Ashvault, MiB, sha256
from oslo_config import cfg

from ashvault import exceptions
from ashvault.testing import volumes
from ashvault_swift.swift import SwiftBackupDriver

DATA = pathlib.Path(__file__).resolve().parent / "data"


class FakeKeystone:
    """Answers ``POST /v3/auth/tokens`` and ``POST /v2.0/tokens`` with the recorded responses.

    The password must be ``secret``; ``tokens`` lists the tokens to hand out in turn (the last one repeats), and
    ``requests`` records every request body.
    """

    def __init__(self, swift: Any) -> None:
        self.swift = swift
        self.tokens: list[str] = []
        self.requests: list[dict[str, Any]] = []
        handler = self._handler()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _token(self) -> str:
        if self.tokens:
            return self.tokens.pop(0) if len(self.tokens) > 1 else self.tokens[0]
        return str(self.swift.token()[1])

    def _render(self, name: str, token: str) -> bytes:
        now = datetime.datetime.now(datetime.UTC)
        text = (DATA / name).read_text()
        for key, value in {
            "__EXPIRES_AT__": (now + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "__ISSUED_AT__": now.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "__SWIFT_URL__": self.swift.storage_url(),
            "__SWIFT_ADMIN_URL__": f"http://127.0.0.1:{self.swift.port}/v1",
            "__KEYSTONE_URL__": self.url,
            "__TOKEN__": token,
        }.items():
            text = text.replace(key, value)
        return text.encode()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        ks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                ks.requests.append({"path": self.path, "body": body})
                unauthorized = (DATA / "keystone_v3_unauthorized.json").read_bytes()
                if self.path.rstrip("/") == "/v3/auth/tokens":
                    password = body["auth"]["identity"]["password"]["user"]["password"]
                    if password != "secret":
                        return self._send(401, unauthorized)
                    token = ks._token()
                    return self._send(201, ks._render("keystone_v3_token.json", token), {"X-Subject-Token": token})
                if self.path.rstrip("/") == "/v2.0/tokens":
                    if body["auth"]["passwordCredentials"]["password"] != "secret":
                        return self._send(401, unauthorized)
                    return self._send(200, ks._render("keystone_v2_token.json", ks._token()))
                return self._send(404, b'{"error": {"code": 404}}')

        return Handler


@pytest.fixture
def keystone(swift: Any) -> Iterator[FakeKeystone]:
    ks = FakeKeystone(swift)
    yield ks
    ks.close()


def _keystone_driver(driver_conf: Callable[..., cfg.ConfigOpts], keystone: FakeKeystone, version: str,
                     **overrides: Any) -> SwiftBackupDriver:
    path = "/v3" if version == "3" else "/v2.0"
    values = {"auth_version": version, "auth_url": keystone.url + path, "user": "backup", "key": "secret",
              "project": "backups", "user_domain": "Default", "project_domain": "Default", **overrides}
    return SwiftBackupDriver(driver_conf(**values))


@pytest.mark.parametrize("version", ["2", "3"])
def test_keystone_single_user_backs_up_and_restores(driver_conf: Callable[..., cfg.ConfigOpts],
                                                    keystone: FakeKeystone, version: str,
                                                    tmp_path: pathlib.Path) -> None:
    driver = _keystone_driver(driver_conf, keystone, version, tenant="backups" if version == "2" else None)
    driver.check_for_setup_error()
    store = driver.store
    store.put_container(driver.default_container)
    data = os.urandom(3 * MiB + 5)
    store.put_object(driver.default_container, "ks/obj", data)
    assert store.get_object(driver.default_container, "ks/obj") == data
    assert len(keystone.requests) == 1, "the token is reused"
    sent = keystone.requests[0]["body"]["auth"]
    if version == "3":
        user = sent["identity"]["password"]["user"]
        assert user["name"] == "backup" and user["domain"]["name"] == "Default"
        assert sent["scope"]["project"] == {"name": "backups", "domain": {"name": "Default"}}
    else:
        assert sent["tenantName"] == "backups" and sent["passwordCredentials"]["username"] == "backup"
    driver.close()


def test_keystone_v3_wrong_password_missing_region_unreachable(driver_conf: Callable[..., cfg.ConfigOpts],
                                                       keystone: FakeKeystone) -> None:
    bad = _keystone_driver(driver_conf, keystone, "3", key="wrong")
    with pytest.raises(exceptions.DriverSetupError, match="refused user 'backup'") as err:
        bad.check_for_setup_error()
    assert "wrong" not in str(err.value)
    with pytest.raises(exceptions.AuthenticationFailed):
        bad.store.list_objects("anything")
    elsewhere = _keystone_driver(driver_conf, keystone, "3", region_name="RegionTwo")
    with pytest.raises(exceptions.DriverSetupError, match="no object-store endpoint"):
        elsewhere.check_for_setup_error()
    gone = SwiftBackupDriver(driver_conf(auth_version="3", auth_url="http://127.0.0.1:9/v3", user="backup",
                                         key="secret", project="backups"))
    with pytest.raises(exceptions.DriverSetupError,
                       match=re.escape("cannot reach Keystone at http://127.0.0.1:9/v3: connection refused")):
        gone.check_for_setup_error()


def test_keystone_v3_token_refused_by_swift_is_renewed_once(driver_conf: Callable[..., cfg.ConfigOpts],
                                                            keystone: FakeKeystone, swift: Any) -> None:
    keystone.tokens = ["AUTH_ftkbogus", swift.token()[1]]
    driver = _keystone_driver(driver_conf, keystone, "3")
    assert driver.store.list_objects(driver.default_container) == []
    assert len(keystone.requests) == 2, "Swift's 401 made the store log in again"


def test_keystone_v3_through_the_cli(keystone: FakeKeystone, tmp_path: pathlib.Path) -> None:
    av = Ashvault(tmp_path)
    av.write_conf("[backup_swift]\nauth = single_user\nauth_version = 3\n"
                  f"auth_url = {keystone.url}/v3\nuser = backup\nkey = secret\nproject = backups\n"
                  f"object_size = {MiB}\n", driver="swift")
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 4 * MiB, seed=41, run=MiB)
    av.j("volume", "register", "v", path)
    b = av.j("backup", "create", "v", "--container", "ks-cli")
    assert sha256(av.j("backup", "restore", b["id"])["volume_location"]) == sha256(path)
    av("backup", "delete", b["id"])


def _run(av: Ashvault, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run ``ashvault`` with exactly the ``OS_*`` variables in ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    proc = subprocess.run([str(BIN / "ashvault"), "--config-file", str(av.conf), *args], capture_output=True,
                          text=True, env={**base, **env}, timeout=120, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


def test_per_user_token_and_storage_url_from_the_environment(swift: Any, tmp_path: pathlib.Path) -> None:
    av = Ashvault(tmp_path)
    av.write_conf(f"backup_swift_object_size = {MiB}\n", driver="swift")  # auth = per_user is Cinder's default
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 4 * MiB, seed=51, run=MiB)
    av.j("volume", "register", "v", path)
    url, token = swift.token()
    env = {"OS_AUTH_TOKEN": token, "OS_STORAGE_URL": url}
    rc, out, err = _run(av, env, "backup", "create", "v", "--name", "mine", "-f", "json")
    assert rc == 0, err
    assert json.loads(out)["status"] == "available"
    assert token not in out + err

    av.write_conf(f"backup_swift_url = http://127.0.0.1:{swift.port}/v1/AUTH_\n", driver="swift")
    rc, out, err = _run(av, {"OS_AUTH_TOKEN": token, "OS_PROJECT_ID": "test"}, "backup", "restore", "mine",
                        "-f", "json")
    assert rc == 0, err
    assert sha256(json.loads(out)["volume_location"]) == sha256(path)

    rc, out, err = _run(av, {"OS_AUTH_TOKEN": "AUTH_ftkexpired", "OS_PROJECT_ID": "test"}, "backup", "create", "v")
    lines = err.strip().splitlines()
    assert rc != 0 and len(lines) == 1 and "was refused (expired?)" in lines[0], err

    rc, out, err = _run(av, {}, "driver", "show", "swift", "--check")
    assert rc != 0 and "needs $OS_AUTH_TOKEN" in err, err
