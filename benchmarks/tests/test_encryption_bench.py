"""CI smoke test of the encryption benchmark: a 64 MiB volume, one pair of runs; it must restore both variants
byte-identical (the script checks) and print its ratios. Timings are never asserted."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_encryption_benchmark_runs(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.encryption", "--size", "64M", "--reps", "1", "--no-drop-caches",
         "--workdir", str(tmp_path), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "ratio" in proc.stdout and "target: full backup at most 1.15x" in proc.stdout
    doc = json.loads(out.read_text())
    assert set(doc["medians"]) == {"plain", "aes-256-gcm"} and doc["backup_ratio"] > 0
    stored = [p for p in (tmp_path / "backups").rglob("*") if p.is_file()]
    assert any(p.parent.name == "ashvault-keys" for p in stored), "the last run was not the encrypted one"
