"""benchmarks/ceph/bench.py still runs (on a 32 MiB image; its figures are not checked here)."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_bench_runs(ceph_cluster: Any, tmp_path: pathlib.Path) -> None:
    # ceph_cluster: skip (or fail under CI) the same way when Ceph is missing; the bench starts its own cluster.
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ceph" / "bench.py"), "--size-mib", "32",
                           "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ceph: incremental, diff path" in proc.stdout and "posix: incremental, diff path" in proc.stdout
    assert list(tmp_path.iterdir()) == [], "the bench must remove its cluster and files"
