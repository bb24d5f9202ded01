"""Helpers for the cross-distribution tests: an ``ashvault`` command run the way a user runs it."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any

from ashvault.testing import volumes

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
MiB = 1 << 20


sha256 = volumes.sha256_file


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self) -> Any:
        return json.loads(self.out)


class Ashvault:
    """Runs the installed ``ashvault`` console script against one state directory and config file."""

    def __init__(self, tmp: pathlib.Path, extra_conf: str = "") -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.backups = tmp / "backups"
        self.conf = tmp / "ashvault.conf"
        self.write_conf(extra_conf)

    def write_conf(self, extra: str = "", *, driver: str = "posix") -> None:
        text = f"[DEFAULT]\nashvault_state_path = {self.state}\nbackup_driver = {driver}\n"
        if "[backup_posix]" not in extra:
            text += f"{extra}\n[backup_posix]\npath = {self.backups}\n"
        else:
            text += extra
        self.conf.write_text(text)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen([str(BIN / "ashvault"), "--config-file", str(self.conf), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})})

    def __call__(self, *args: str, ok: bool | None = True, timeout: float = 600) -> Result:
        proc = subprocess.run([str(BIN / "ashvault"), "--config-file", str(self.conf), *args],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        res = Result(proc)
        if ok is True:
            assert res.rc == 0, f"ashvault {' '.join(args)} failed ({res.rc}): {res.err}{res.out}"
        elif ok is False:
            assert res.rc != 0, f"ashvault {' '.join(args)} should have failed: {res.out}"
        return res

    def j(self, *args: str) -> Any:
        return self(*args, "-f", "json").json()


def one_line_error(res: Result) -> str:
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one error line, got: {res.err!r}"
    assert lines[0].startswith("ashvault: error: "), lines[0]
    return lines[0]




def register_volumes(av: Ashvault, directory: pathlib.Path, count: int, size: int, *, seed: int) -> list[str]:
    """``count`` mixed-data volumes ``v0``, ``v1``, ... registered with ``av``; returns their paths."""
    paths = []
    for n in range(count):
        path = str(directory / f"v{n}.img")
        volumes.write_mixed(path, size, seed=seed + n, run=MiB)
        av.j("volume", "register", f"v{n}", path)
        paths.append(path)
    return paths
