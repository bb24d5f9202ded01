"""Jobs that are killed, cancelled or run side by side: earlier backups are never damaged."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time
from typing import Any

from clitools import Ashvault, MiB, one_line_error, register_volumes, sha256

from ashvault.api import API
from ashvault.conf import make_config
from ashvault.jobs.job import Job, Observers
from ashvault.locks import FileLock
from ashvault.testing import volumes

SLOW = "backup_bandwidth_limit = 8388608\n"


def _backup_dir(av: Ashvault, volume_id: str, backup_id: str) -> pathlib.Path:
    return av.backups / "volumebackups" / f"volume_{volume_id}" / f"backup_{backup_id}"


def _wait_for_running(av: Ashvault, proc: subprocess.Popen[str], status: str = "creating") -> dict[str, str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        running = av.j("backup", "list", "--status", status)
        if running:
            b: dict[str, str] = running[0]
            d = _backup_dir(av, b["volume_id"], b["id"])
            if status != "creating" or (d.exists() and any(d.glob("d*"))):
                return b
        time.sleep(0.2)
    if proc.poll() is not None:
        out, err = proc.communicate()
        raise AssertionError(f"the job ended ({proc.returncode}) before it was seen {status}: {err}{out}")
    raise AssertionError(f"no backup reached {status} in 60 s; the catalog: {av.j('backup', 'list')}")


def test_sigkill_mid_backup(av: Ashvault, tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 64 * MiB, seed=41, run=MiB, zero=0, text=0)
    av.j("volume", "register", "v", path)
    earlier = av.j("backup", "create", "v", "--name", "earlier")
    want = sha256(path)
    av.write_conf(SLOW)
    proc = av.popen("backup", "create", "v", "--name", "killed")
    running = _wait_for_running(av, proc)
    assert running["name"] == "killed"
    assert av.j("backup", "show", "killed")["status"] == "creating", "a live job is never reset"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = av.j("backup", "show", "killed")
    assert killed["status"] == "error" and "incomplete" in killed["fail_reason"]
    assert av.j("volume", "show", "v")["status"] == "available"
    av.write_conf()
    assert sha256(av.j("backup", "restore", "earlier")["volume_location"]) == want
    wrote = _backup_dir(av, killed["volume_id"], killed["id"])
    assert wrote.exists()
    av("backup", "delete", "killed")
    assert not wrote.exists(), "deleting the failed backup removes everything it wrote"
    assert av.j("backup", "verify", "earlier")["result"] == "ok"
    assert av.j("backup", "create", "v", "--incremental")["parent_id"] == earlier["id"]


def test_force_delete_stops_a_running_backup(av: Ashvault, tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 64 * MiB, seed=42, run=MiB, zero=0, text=0)
    av.j("volume", "register", "v", path)
    av.write_conf(SLOW)
    proc = av.popen("backup", "create", "v", "--name", "doomed")
    running = _wait_for_running(av, proc)
    refused = av("backup", "delete", "doomed", ok=False)
    assert "--force" in one_line_error(refused)
    assert av.j("backup", "delete", "doomed", "--force")[0]["status"] == "deleted"
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "cancelled" in err
    assert not _backup_dir(av, running["volume_id"], running["id"]).exists()
    assert av.j("volume", "show", "v")["status"] == "available"


def test_two_backups_at_the_same_moment(av: Ashvault, tmp_path: pathlib.Path) -> None:
    paths = register_volumes(av, tmp_path, 2, 48 * MiB, seed=50)
    procs = [av.popen("backup", "create", f"v{n}", "-f", "json") for n in range(2)]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    done = av.j("backup", "list")
    assert sorted(b["status"] for b in done) == ["available", "available"]
    for n, p in enumerate(paths):
        b = av.j("backup", "list", "--volume", f"v{n}")[0]
        assert sha256(av.j("backup", "restore", b["id"])["volume_location"]) == sha256(p)


def test_killed_restore_is_resolved(av: Ashvault, tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 64 * MiB, seed=43, run=MiB, zero=0, text=0)
    av.j("volume", "register", "v", path)
    b = av.j("backup", "create", "v")
    target = av.j("volume", "create", "target", "--size", "0.0625")
    av.write_conf(SLOW)
    proc = av.popen("backup", "restore", b["id"], "target", "--force")
    _wait_for_running(av, proc, "restoring")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert av.j("backup", "show", b["id"])["status"] == "available"
    assert av.j("volume", "show", "target")["status"] == "error_restoring"
    av.write_conf()
    av("backup", "restore", b["id"], "target", "--force")
    assert sha256(target["location"]) == sha256(path)
    assert os.path.getsize(target["location"]) == 64 * MiB


def test_max_operations_queues_the_second_backup(av: Ashvault, tmp_path: pathlib.Path) -> None:
    for n in range(2):
        volumes.write_mixed(str(tmp_path / f"v{n}.img"), 32 * MiB, seed=60 + n, run=MiB, zero=0, text=0)
        av.j("volume", "register", f"v{n}", str(tmp_path / f"v{n}.img"))
    av.write_conf(SLOW + "backup_max_operations = 1\n")
    first = av.popen("backup", "create", "v0", "--name", "first")
    running = _wait_for_running(av, first)
    assert running["name"] == "first"
    second = av.popen("backup", "create", "v1", "--name", "second")
    overlapped = False
    while first.poll() is None:
        queued = [b for b in av.j("backup", "list", "--status", "creating") if b["name"] == "second"]
        if queued and _backup_dir(av, queued[0]["volume_id"], queued[0]["id"]).exists():
            overlapped = av.j("backup", "show", "first")["status"] == "creating"
        time.sleep(0.3)
    assert first.wait() == 0 and second.wait(timeout=120) == 0
    assert not overlapped, "the second backup wrote while the first held the only slot"
    assert sorted(b["status"] for b in av.j("backup", "list")) == ["available", "available"]


def _queued_behind_a_start_up(api: API, other: API) -> list[list[str]]:
    """Make every job of ``api`` wait in its queue while ``other`` (another process starting up) cleans up."""
    seen: list[list[str]] = []
    submit = api.dispatcher.submit

    def late(job: Job, observers: Observers | None = None) -> Any:
        seen.append(other.manager.cleanup_incomplete())
        return submit(job, observers)

    api.dispatcher.submit = late  # type: ignore[method-assign]
    return seen


def test_a_queued_job_is_not_taken_for_a_dead_one(av: Ashvault, tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 8 * MiB, seed=43, run=MiB)
    conf = str(av.conf)
    api, other = API(make_config(config_files=[conf])), API(make_config(config_files=[conf]))
    try:
        api.volume_register("v", path)
        seen = _queued_behind_a_start_up(api, other)
        made = api.backup_create("v")
        assert made.status == "available"
        _backup, restored = api.backup_restore(made.id)
        assert sha256(restored.location) == sha256(path)
        assert seen == [[], []], "the start-up left the queued backup and restore alone"
        assert api.backup_get(made.id).status == "available"
        shipped = api.backup_export(made.id)
    finally:
        api.close()
        other.close()
    (tmp_path / "site-b").mkdir()
    site = Ashvault(tmp_path / "site-b")
    site.backups = av.backups
    site.write_conf()
    api, other = API(make_config(config_files=[str(site.conf)])), API(make_config(config_files=[str(site.conf)]))
    try:
        seen = _queued_behind_a_start_up(api, other)
        assert api.backup_import(shipped["backup_service"], shipped["backup_url"]).status == "available"
        assert seen == [[]], "the start-up left the import alone"
    finally:
        api.close()
        other.close()


def test_force_delete_does_not_wait_for_a_job_queued_for_a_slot(av: Ashvault, tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 8 * MiB, seed=44, run=MiB)
    av.j("volume", "register", "v", path)
    av.write_conf("backup_max_operations = 1\n")
    slot = FileLock(str(av.state / "locks" / "operation-slot-0.lock"))
    assert slot.acquire(blocking=False), "this test holds the only operation slot, as a running job would"
    try:
        proc = av.popen("backup", "create", "v", "--name", "queued")
        deadline = time.monotonic() + 60
        while not av.j("backup", "list", "--status", "creating") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "the backup waits for the slot"
        started = time.monotonic()
        deleted = av("backup", "delete", "queued", "--force", "-f", "json", timeout=60).json()
        assert deleted[0]["status"] == "deleted" and time.monotonic() - started < 30
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and "cancelled" in err
    finally:
        slot.release()
    assert av.j("volume", "show", "v")["status"] == "available"
