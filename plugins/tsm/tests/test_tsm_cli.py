"""End to end through the ``ashvault`` command with the tsm driver and the dsmc simulator: the walk-through on a
file volume and on a loop device, 256 MiB round-tripped byte-identical, Cinder's option names, what TSM cannot do
said in one line, a failed and a force-deleted backup, and the password kept out of every output and process."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import time
from collections.abc import Callable
from typing import Any

import pytest
from clitools import Ashvault, one_line_error, sha256

from ashvault.testing import volumes

MiB = 1 << 20


def tsm_cli(tmp: pathlib.Path, sim: Any, extra: str = "") -> Ashvault:
    tmp.mkdir(parents=True, exist_ok=True)
    av = Ashvault(tmp)
    av.write_conf(f"[backup_tsm]\npassword = {sim.password}\n{extra}", driver="tsm")
    return av


def fill_device(dev: str, tmp: pathlib.Path, size: int, seed: int) -> str:
    """Half zero runs, half random ones (text runs are slow to generate at this size)."""
    src = volumes.write_mixed(str(tmp / f"fill{seed}.img"), size, seed=seed, run=MiB, zero=0.5, text=0.0)
    with open(src, "rb") as fin, open(dev, "r+b") as fout:
        while data := fin.read(8 * MiB):
            fout.write(data)
        fout.flush()
        os.fsync(fout.fileno())
    os.unlink(src)
    return sha256(dev)


def test_walkthrough_file_volume(sim: Any, tmp_path: pathlib.Path) -> None:
    av = tsm_cli(tmp_path, sim)
    path = volumes.write_mixed(str(tmp_path / "vol1.img"), 32 * MiB, seed=1, run=MiB)
    want = sha256(path)
    av.j("volume", "register", "volume1", path)
    full = av.j("backup", "create", "volume1", "--name", "full")
    assert full["status"] == "available" and full["size_bytes"] == 32 * MiB
    assert sim.keys_for(full["id"]) == [f"file:{tmp_path}/backup-{full['id']}"]

    line = one_line_error(av("backup", "create", "volume1", "--incremental", ok=False))
    assert "not supported" in line and "incremental" in line
    line = one_line_error(av("backup", "verify", "full", ok=False))
    assert "not supported" in line and "verify" in line

    restored = av.j("backup", "restore", "full")
    assert restored["volume_created"] and sha256(restored["volume_location"]) == want
    with open(path, "r+b") as f:
        f.write(os.urandom(MiB))
    av("backup", "restore", "full", "volume1", "--force")
    assert sha256(path) == want

    assert [d["status"] for d in av.j("backup", "delete", "full")] == ["deleted"]
    assert sim.objects() == {}
    assert av.j("backup", "list") == []


def test_256_mib_loop_device_round_trips_byte_identical(sim: Any, tmp_path: pathlib.Path,
                                                        loopdev: Callable[[int], str]) -> None:
    av = tsm_cli(tmp_path, sim)
    dev = loopdev(256 * MiB)
    want = fill_device(dev, tmp_path, 256 * MiB, seed=2)
    av.j("volume", "register", "blockvol", dev)
    b = av.j("backup", "create", "blockvol", "--name", "big")
    assert b["status"] == "available" and b["size_bytes"] == 256 * MiB
    assert sim.keys_for(b["id"]) == [f"image:/dev/backup-{b['id']}"]

    restored = av.j("backup", "restore", "big")
    assert sha256(restored["volume_location"]) == want
    other = loopdev(256 * MiB)
    av.j("volume", "register", "target", other)
    av("backup", "restore", "big", "target", "--force")
    assert sha256(other) == want
    av("backup", "delete", "big")
    assert sim.objects() == {}


def test_record_export_and_import_on_another_site(sim: Any, tmp_path: pathlib.Path) -> None:
    site_a = tsm_cli(tmp_path / "a", sim)
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=7, run=MiB)
    site_a.j("volume", "register", "v", path)
    b = site_a.j("backup", "create", "v", "--name", "shipped")
    rec = site_a.j("backup", "record", "export", "shipped")
    doc = json.loads(base64.b64decode(rec["backup_url"]))
    assert doc["format"] == "tsm/1" and doc["driver_info"]["backup_mode"] == "file"  # the core's tag, the driver's
    site_b = tsm_cli(tmp_path / "b", sim)
    imported = site_b.j("backup", "record", "import", rec["backup_service"], rec["backup_url"])
    assert imported["id"] == b["id"] and imported["status"] == "available"
    assert sha256(site_b.j("backup", "restore", b["id"])["volume_location"]) == sha256(path)
    site_a("backup", "delete", "shipped")
    site_c = tsm_cli(tmp_path / "c", sim)
    gone = site_c("backup", "record", "import", rec["backup_service"], rec["backup_url"], ok=False)
    assert "holds no file object" in one_line_error(gone)


def test_cinder_option_names_and_class_path(sim: Any, tmp_path: pathlib.Path) -> None:
    av = Ashvault(tmp_path)
    av.conf.write_text(
        f"[DEFAULT]\nashvault_state_path = {av.state}\nbackup_driver = cinder.backup.drivers.tsm.TSMBackupDriver\n"
        f"backup_tsm_password = {sim.password}\nbackup_tsm_volume_prefix = cinderbk\n"
        "backup_tsm_compression = False\nbackup_tsm_timeout = 120\n")
    shown = av.j("driver", "show", "tsm", "--check")
    assert shown["check"] == "ok" and shown["default"] is True
    assert shown["options"]["volume_prefix"] == "cinderbk" and shown["options"]["compression"] is False
    assert shown["options"]["timeout"] == 120 and shown["options"]["password"] == "****"
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=3, run=MiB)
    av.j("volume", "register", "v", path)
    b = av.j("backup", "create", "v")
    assert sim.keys_for(b["id"]) == [f"file:{tmp_path}/cinderbk-{b['id']}"]
    assert "-compression=no" in next(c["argv"] for c in sim.calls() if c["argv"][0] == "selective")


def test_capabilities_and_masked_password_in_driver_show(sim: Any, tmp_path: pathlib.Path) -> None:
    av = tsm_cli(tmp_path, sim)
    res = av("driver", "show", "tsm", "-f", "json")
    shown = res.json()
    assert shown["capabilities"]["incremental"] is False and shown["capabilities"]["verify"] is False
    assert shown["options"]["password"] == "****" and sim.password not in res.out + res.err
    res = av("driver", "show", "tsm")
    assert sim.password not in res.out + res.err


def test_rc12_backup_ends_in_error_with_dsmcs_message(sim: Any, tmp_path: pathlib.Path) -> None:
    av = tsm_cli(tmp_path, sim)
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=4, run=MiB)
    av.j("volume", "register", "v", path)
    sim.inject("backup", mode="fail", msg="ANS1329S Server out of data storage space")
    line = one_line_error(av("backup", "create", "v", ok=False))
    assert "ANS1329S Server out of data storage space" in line and sim.password not in line
    [rec] = av.j("backup", "list")
    assert rec["status"] == "error"
    av("backup", "delete", rec["id"])
    assert av.j("backup", "list") == [] and sim.objects() == {}


def test_force_delete_stops_a_running_backup(sim: Any, tmp_path: pathlib.Path) -> None:
    av = tsm_cli(tmp_path, sim)
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=5, run=MiB)
    av.j("volume", "register", "v", path)
    sim.inject("backup", mode="hang", seconds=600)
    proc = av.popen("backup", "create", "v", "--name", "slow")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not av.j("backup", "list"):
            time.sleep(0.2)
        [rec] = av.j("backup", "list")
        assert rec["status"] == "creating"
        av("backup", "delete", "--force", rec["id"])
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0 and "cancelled" in err
    assert av.j("backup", "list") == [] and sim.objects() == {}
    assert not [p for p in os.listdir(tmp_path) if p.startswith("backup-")]


@pytest.mark.parametrize("step", ["backup", "restore"])
def test_password_absent_from_process_list_while_the_cli_runs(sim: Any, tmp_path: pathlib.Path, step: str) -> None:
    av = tsm_cli(tmp_path, sim)
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=6, run=MiB)
    av.j("volume", "register", "v", path)
    if step == "restore":
        av.j("backup", "create", "v", "--name", "b")
    sim.inject(step, mode="hang", seconds=3)
    args = ("backup", "create", "v") if step == "backup" else ("backup", "restore", "b")
    proc = av.popen("-v", "-v", "--debug", *args)
    seen = []
    while proc.poll() is None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "dsmc" in cmd or sim.password in cmd:
                seen.append(cmd)
        time.sleep(0.05)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert any(("selective" if step == "backup" else "restore") in c for c in seen), "dsmc was never seen running"
    assert not [c for c in seen if sim.password in c]
    assert sim.password not in out + err
    assert "-optfile=" in err  # the debug log shows the dsmc command line, without the password


def test_check_reports_a_wrong_password_in_one_line(sim: Any, tmp_path: pathlib.Path) -> None:
    av = Ashvault(tmp_path)
    av.write_conf("[backup_tsm]\npassword = wrong-one\n", driver="tsm")
    res = av("driver", "show", "tsm", "--check", ok=False)
    line = one_line_error(res)
    assert "ANS1025E" in line and "wrong-one" not in res.out + res.err
