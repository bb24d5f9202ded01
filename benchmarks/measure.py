"""Timing a tool's step: wall time including an fsync of what it wrote, peak RSS, and repository size."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

DROP_CACHES = "/proc/sys/vm/drop_caches"
# A child of this (large) Python process inherits its peak RSS through fork+exec, so wait4 would report at
# least that; GNU time forks the tool from a small process, which gives the tool's own peak.
GNU_TIME = "/usr/bin/time"


class StepFailed(RuntimeError):
    """A tool exited non-zero; the message holds the command's name and the tail of its stderr."""


@dataclass
class Run:
    seconds: float
    rss_kib: int
    stdout: str
    cpu_s: float


def can_drop_caches() -> bool:
    return os.access(DROP_CACHES, os.W_OK)


def drop_caches() -> bool:
    """Flush dirty pages and drop the page cache; False (nothing done) when not permitted."""
    os.sync()
    try:
        with open(DROP_CACHES, "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def fsync_tree(paths: Iterable[str], since: float) -> None:
    """fsync every file (and its directory) under ``paths`` modified at or after ``since``."""
    dirs: set[str] = set()
    for top in paths:
        if os.path.isfile(top):
            _fsync(top)
            dirs.add(os.path.dirname(top) or ".")
            continue
        for d, _sub, files in os.walk(top):
            for name in files:
                p = os.path.join(d, name)
                try:
                    if os.lstat(p).st_mtime >= since:
                        _fsync(p)
                        dirs.add(d)
                except FileNotFoundError:
                    continue
    for d in dirs:
        _fsync(d)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
        written: Sequence[str] = ()) -> Run:
    """Run ``argv`` and fsync what it wrote under ``written``; wall time covers both.

    Peak RSS is ``ru_maxrss`` of the largest process of the tree and CPU is user+sys of the tree, both from GNU
    time (wait4 when it is missing).
    Raises StepFailed when the command exits non-zero.
    """
    full_env = {**os.environ, **(env or {})}
    gnu_time = os.access(GNU_TIME, os.X_OK)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss:
        cmd = [GNU_TIME, "-q", "-f", "%M %U %S", "-o", rss.name, *argv] if gnu_time else list(argv)
        start_wall = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=full_env, cwd=cwd)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        fsync_tree(written, start_wall - 1)
        seconds = time.perf_counter() - t0
        rss_kib, cpu_s = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        if gnu_time:
            text = rss.read().split()
            if len(text) >= 3 and text[-3].isdigit():
                rss_kib, cpu_s = int(text[-3]), float(text[-2]) + float(text[-1])
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        if proc.returncode != 0:
            tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
            raise StepFailed(f"{os.path.basename(argv[0])} {argv[1] if len(argv) > 1 else ''} exited "
                             f"{proc.returncode}: {' | '.join(tail)}")
    return Run(seconds, rss_kib, stdout, cpu_s)


def tree_bytes(path: str) -> int:
    """Apparent size of every file under ``path`` (``du -sb``)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _s, files in os.walk(path) for f in files)


def allocated(path: str) -> int:
    """Bytes allocated on disk for one file (holes excluded)."""
    return os.stat(path).st_blocks * 512
