"""CI smoke test of the benchmark: a 64 MiB volume, one repetition, every installed tool; correctness only.

Timings are never asserted. Under CI=true a missing restic or borg is a failure (benchmarks/install.sh installs
them); elsewhere the test skips them. Benji is optional everywhere: it is reported, not required.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import zlib

import pytest

from benchmarks import volumes

ROOT = pathlib.Path(__file__).resolve().parents[2]
MiB = 1 << 20
CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    work = tmp_path_factory.mktemp("bench")
    out = work / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.main", "--size", "64M", "--reps", "1", "--cases", "compare,metadata,workers",
         "--no-drop-caches", "--workdir", str(work), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert out.exists(), f"no JSON written (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return proc, json.loads(out.read_text())


def test_runs_and_prints_table(smoke: tuple[subprocess.CompletedProcess[str], dict]) -> None:
    proc, doc = smoke
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert not [r for r in doc["records"] if "error" in r]
    for op in ("full", "incr", "restore"):
        assert f"| {op} | cp |" in proc.stdout and f"| {op} | ashvault |" in proc.stdout
    assert "| ashvault target | limit | measured | met |" in proc.stdout
    assert "Floor of a full backup here" in proc.stdout and "Floor of a restore here" in proc.stdout
    assert "With one worker, the one CPU slot does all the engine's CPU work" in proc.stdout
    assert "Ceiling of the 2/1 workers ratio here" in proc.stdout
    floor = next(r for r in doc["records"] if r.get("variant") == "floor: read + write at once")
    # 64 MiB of I/O may take less than one clock tick of CPU, so only the record is checked here.
    assert floor.get("cpu_s", -1.0) >= 0, "the kernel's CPU for the backup's I/O was not recorded"


def test_peers_installed(smoke: tuple[subprocess.CompletedProcess[str], dict]) -> None:
    _proc, doc = smoke
    tools = doc["info"]["tools"]
    assert tools["cp"]["unavailable"] is None and tools["ashvault"]["unavailable"] is None
    for peer in ("restic", "borg"):
        if tools[peer]["unavailable"]:
            if CI:
                pytest.fail(f"{peer} missing under CI: {tools[peer]['unavailable']}")
            pytest.skip(f"{peer}: {tools[peer]['unavailable']}")
    if tools["benji"]["unavailable"]:
        assert tools["benji"]["unavailable"].startswith(("not installable here", "not installed"))


def test_every_installed_tool_restores_identically(smoke: tuple[subprocess.CompletedProcess[str], dict]) -> None:
    _proc, doc = smoke
    installed = [n for n, t in doc["info"]["tools"].items() if not t["unavailable"]]
    assert {"cp", "ashvault"} <= set(installed)
    for tool in installed:
        steps = {r["op"]: r for r in doc["records"] if r.get("case") == "compare" and r["tool"] == tool}
        assert set(steps) == {"full", "incr", "restore"}, tool
        assert steps["restore"]["verified"] is True, f"{tool} restore differs"
        assert all(steps[op]["stored_bytes"] > 0 for op in steps), tool
        assert steps["incr"]["stored_bytes"] >= steps["full"]["stored_bytes"], tool


def test_ashvault_incremental_and_metadata(smoke: tuple[subprocess.CompletedProcess[str], dict]) -> None:
    _proc, doc = smoke
    av = {r["op"]: r for r in doc["records"] if r.get("case") == "compare" and r["tool"] == "ashvault"}
    assert 0 < av["incr"]["added_bytes"] < av["full"]["stored_bytes"]
    assert av["restore"]["holes"] is True, "ashvault restore should leave the zero runs as holes"
    meta = [r for r in doc["records"] if r.get("case") == "metadata"]
    assert meta and meta[0]["bytes_per_gib"] > 0


def test_generator_and_mutator(tmp_path: pathlib.Path) -> None:
    size = 32 * MiB
    dense, holey = str(tmp_path / "dense"), str(tmp_path / "sparse")
    lay = volumes.write_volume(dense, size, seed=3)
    assert volumes.write_volume(holey, size, seed=3, sparse=True) == lay
    assert (lay.kinds.count("z"), lay.kinds.count("t"), lay.kinds.count("r")) == (3, 2, 3)
    assert volumes.sha256_file(dense) == volumes.sha256_file(holey)
    assert os.stat(holey).st_blocks * 512 <= lay.data_bytes + MiB < os.stat(dense).st_blocks * 512
    with open(dense, "rb") as f:
        data = f.read()
    text = next(data[i * volumes.RUN:(i + 1) * volumes.RUN] for i, k in enumerate(lay.kinds) if k == "t")
    assert 2.7 < len(text) / len(zlib.compress(text, 6)) < 3.6
    before = volumes.sha256_file(dense)
    picked = volumes.mutate(dense, percent=1.0, seed=7)
    assert len(picked) == 5 and len(set(picked)) == 5
    assert volumes.sha256_file(dense) != before
