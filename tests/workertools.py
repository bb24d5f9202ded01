"""Helpers for the backup-worker tests: a RabbitMQ vhost of their own, and "hosts" on this machine, each an
``ashvault`` configuration (its own host name and state_path) sharing one PostgreSQL catalog, one bus and one posix
backup directory, with real ``ashvault-backup`` processes started from it."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from clitools import BIN, Ashvault

from ashvault.catalog import Catalog

RABBIT = "127.0.0.1:5672"


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120)


def rabbit_vhost() -> Iterator[str]:
    """A vhost of its own on the local RabbitMQ, dropped afterwards; its ashvault_transport_url."""
    ctl = shutil.which("rabbitmqctl")
    problem = None if ctl else "rabbitmqctl is not installed"
    name = f"ashvault_{uuid.uuid4().hex[:10]}"
    if ctl:
        made = rabbitmqctl("add_vhost", name)
        if made.returncode != 0:
            problem = f"rabbitmqctl add_vhost failed: {made.stderr.strip() or made.stdout.strip()}"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"RabbitMQ is not usable ({problem}); scripts/services/rabbitmq.sh starts it")
        pytest.skip(f"RabbitMQ is not usable ({problem}); run scripts/services/rabbitmq.sh")
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"rabbit://guest:guest@{RABBIT}/{name}"
    finally:
        rabbitmqctl("delete_vhost", name)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, poll: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


class Site:
    """Hosts sharing a catalog, a bus and a backup directory; workers started here are stopped at the end."""

    def __init__(self, tmp: pathlib.Path, pg_url: str, ashvault_transport_url: str, **options: Any) -> None:
        self.tmp = tmp
        self.pg_url = pg_url
        self.ashvault_transport_url = ashvault_transport_url
        self.backups = tmp / "backups"
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.options = {"report_interval": 1, "service_down_time": 4, "job_resend_interval": 3,
                        "graceful_shutdown_timeout": 30, **options}
        self.workers: list[tuple[subprocess.Popen[bytes], pathlib.Path]] = []

    def host(self, name: str, **options: Any) -> Ashvault:
        """The ``ashvault`` command of host ``name`` (its configuration is its workers' too)."""
        lines = [f"host = {name}", f"ashvault_transport_url = {self.ashvault_transport_url}"]
        lines += [f"{k} = {v}" for k, v in {**self.options, **options}.items()]
        extra = "\n".join(lines) + (f"\n[ashvault_database]\nconnection = {self.pg_url}\n"
                                     f"[backup_posix]\npath = {self.backups}\n")
        (self.tmp / name).mkdir(exist_ok=True)
        return Ashvault(self.tmp / name, extra)

    def start(self, av: Ashvault) -> subprocess.Popen[bytes]:
        """An ``ashvault-backup`` service from ``av``'s configuration, logging to its own file."""
        log = self.logs / f"{av.tmp.name}-{len(self.workers)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(BIN / "ashvault-backup"), "--config-file", str(av.conf)],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.workers.append((proc, log))
        return proc

    def register(self, av: Ashvault, paths: dict[str, str]) -> None:
        """Register the volumes ``paths`` (name -> file) on ``av``'s host, in this process: set-up that a command per
        volume would spend a Python start-up on, each."""
        from ashvault.api import API
        from ashvault.conf import make_config

        api = API(make_config([], [str(av.conf)]))
        try:
            for name, path in paths.items():
                api.volume_register(name, path)
        finally:
            api.close()

    def catalog(self) -> Catalog:
        return Catalog(self.pg_url, lock_dir=str(self.tmp))

    def services(self, av: Ashvault) -> list[dict[str, Any]]:
        return av.j("service", "list")  # type: ignore[no-any-return]

    def wait_up(self, av: Ashvault, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        proc, log = self.workers[-1]
        time.sleep(0.5)
        assert proc.poll() is None, f"ashvault-backup ended: {log.read_text()[-3000:]}"
        return wait_for(f"{count} workers up",  # type: ignore[no-any-return]
                        lambda: (lambda up: up if len(up) >= count else None)(
                            [s for s in self.services(av) if s["status"] == "up"]), timeout)

    def log_text(self) -> str:
        return "".join(log.read_text(errors="replace") for _, log in self.workers)

    def claims(self) -> dict[str, list[str]]:
        """Backup id -> the kinds of the jobs workers claimed for it, from every worker's log."""
        found: dict[str, list[str]] = {}
        for m in re.finditer(r"job \S+: claimed: (\w+) of backup (\S+)", self.log_text()):
            found.setdefault(m.group(2), []).append(m.group(1))
        return found

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        proc.send_signal(sig)
        return proc.wait(timeout=timeout)

    def close(self) -> None:
        for proc, _ in self.workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


class PrivatePostgreSQL:
    """A PostgreSQL cluster of the test's own (so restarting it disturbs nobody), on ``port``."""

    def __init__(self, port: int = 55432) -> None:
        versions = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not versions or not shutil.which("runuser"):
            message = "PostgreSQL's server programs are not installed; scripts/services/postgresql.sh installs them"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        self.bin = versions[-1].parent
        self.port = port
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="ashvault-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self._pg("initdb", "-D", str(self.dir / "data"), "--auth=trust", "-U", "postgres")
        self.start()
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _pg(self, program: str, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / program), *args], check=True,
                       capture_output=True, timeout=120)

    def start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "start", "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off")

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
