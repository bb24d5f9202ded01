"""``--no-wait`` without backup workers: the ``ashvault`` command starts the job in a detached process, returns the
backup's id at once, and ``backup show`` follows the job in the catalog."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import time

import pytest
from clitools import BIN, Ashvault, MiB, one_line_error, sha256
from workertools import wait_for

LIMIT = 2 * MiB
"""backup_bandwidth_limit: a 12 MiB volume of random data takes about 6 s each way, so each job is still running
when the command that started it has returned, and the commands after it, even on a busy machine."""


SLOW = f"backup_bandwidth_limit = {LIMIT}\nbackup_compression_algorithm = none"


@pytest.fixture
def slow(tmp_path: pathlib.Path) -> Ashvault:
    return Ashvault(tmp_path, SLOW)


def random_volume(av: Ashvault, path: pathlib.Path, size: int = 12 * MiB) -> str:
    path.write_bytes(os.urandom(size))
    av.j("volume", "register", "v", str(path))
    return str(path)


def backup_files(av: Ashvault, backup_id: str) -> list[pathlib.Path]:
    return [p for p in av.backups.rglob("*") if f"backup_{backup_id}" in str(p)]


def detached_pid(av: Ashvault, kind: str, backup_id: str) -> int:
    """The detached process running the job: it names itself in the job's lock once it has started."""
    log = av.state / "logs" / f"{kind}-{backup_id}.log"
    wait_for("the detached job to start", lambda: log.exists() and "started" in log.read_text(), 30, poll=0.05)
    return int((av.state / "locks" / f"backup-{backup_id}.lock").read_text())


def test_no_wait_returns_at_once_and_show_follows_the_job(slow: Ashvault, tmp_path: pathlib.Path) -> None:
    path = random_volume(slow, tmp_path / "v.img")
    began = time.monotonic()
    b = slow.j("backup", "create", "v", "--no-wait")
    returned = time.monotonic() - began
    assert b["status"] == "creating"
    shown = slow.j("backup", "show", b["id"])
    assert shown["status"] == "creating", "the command returned before the backup was available"
    assert shown["progress"].endswith("%")
    assert slow.j("volume", "show", "v")["status"] == "backing-up"
    assert detached_pid(slow, "backup", b["id"]) > 0

    done = wait_for("the backup", lambda: (s := slow.j("backup", "show", b["id"]))["status"] != "creating" and s, 60)
    took = time.monotonic() - began
    assert done["status"] == "available", done["fail_reason"]
    assert done["progress"] is None
    assert done["object_count"] > 0
    assert returned < took / 2, f"the command took {returned:.1f} s of the backup's {took:.1f} s"
    assert slow.j("volume", "show", "v")["status"] == "available"

    r = slow.j("backup", "restore", b["id"], "copy", "--no-wait")
    assert r["volume_created"] is True
    assert slow.j("volume", "show", "copy")["status"] == "restoring-backup"
    assert slow.j("backup", "show", b["id"])["status"] == "restoring"
    wait_for("the restore", lambda: slow.j("volume", "show", "copy")["status"] != "restoring-backup", 60)
    assert slow.j("volume", "show", "copy")["status"] == "available"
    assert slow.j("backup", "show", b["id"])["status"] == "available"
    assert sha256(r["volume_location"]) == sha256(path)
    assert "restore of backup" in (slow.state / "logs" / f"restore-{b['id']}.log").read_text()


def test_a_killed_detached_job_is_resolved_by_the_next_command(slow: Ashvault, tmp_path: pathlib.Path) -> None:
    random_volume(slow, tmp_path / "v.img")
    b = slow.j("backup", "create", "v", "--no-wait")
    pid = detached_pid(slow, "backup", b["id"])
    # A whole object, not only a temporary: the posix store leaves the temporaries of a backup that completed no
    # object at all when that backup is deleted (it removes them with the objects of their directory).
    wait_for("the first object", lambda: any(p.is_file() and not p.name.startswith(".tmp-")
                                             for p in backup_files(slow, b["id"])), 30, poll=0.05)
    os.kill(pid, signal.SIGKILL)

    shown = wait_for("the next command to resolve it",
                     lambda: (s := slow.j("backup", "show", b["id"]))["status"] != "creating" and s, 10, poll=0.05)
    assert shown["status"] == "error"
    assert "stopped before it finished" in shown["fail_reason"]
    assert shown["progress"] is None, "the job's row ended with it"
    assert slow.j("volume", "show", "v")["status"] == "available"
    assert any(p.is_file() for p in backup_files(slow, b["id"])), "what it wrote is there until deleted"

    slow("backup", "delete", b["id"])
    assert backup_files(slow, b["id"]) == []
    assert slow.j("backup", "list") == []


def test_a_killed_detached_restore_leaves_the_backup_available(slow: Ashvault, tmp_path: pathlib.Path) -> None:
    path = random_volume(slow, tmp_path / "v.img")
    slow.write_conf("backup_compression_algorithm = none")
    b = slow.j("backup", "create", "v")
    slow.write_conf(SLOW)
    r = slow.j("backup", "restore", b["id"], "copy", "--no-wait")
    os.kill(detached_pid(slow, "restore", b["id"]), signal.SIGKILL)

    wait_for("the next command to resolve it", lambda: slow.j("backup", "show", b["id"])["status"] == "available",
             10, poll=0.05)
    assert slow.j("backup", "show", b["id"])["progress"] is None
    assert slow.j("volume", "show", "copy")["status"] == "error_restoring"
    again = slow.j("backup", "restore", b["id"], "copy", "--force")
    assert sha256(again["volume_location"]) == sha256(path) == sha256(r["volume_location"])


def test_a_job_that_cannot_start_detached_fails_in_one_line(av: Ashvault, tmp_path: pathlib.Path) -> None:
    random_volume(av, tmp_path / "v.img", MiB)
    (av.state / "logs").write_text("not a directory")
    err = one_line_error(av("backup", "create", "v", "--no-wait", ok=False))
    assert "could not be started in the background" in err and str(av.state / "logs") in err
    [b] = av.j("backup", "list")
    shown = av.j("backup", "show", b["id"])
    assert shown["status"] == "error" and "could not be started" in shown["fail_reason"]
    assert shown["progress"] is None
    assert av.j("volume", "show", "v")["status"] == "available"
    assert av.j("backup", "create", "v")["status"] == "available", "a waited-for backup needs no detached process"


def test_workers_sharing_the_catalog_leave_a_detached_job_to_its_host(slow: Ashvault, tmp_path: pathlib.Path) -> None:
    """A detached job sends no heartbeat: a worker's take-over must not mistake it for a dead worker's job."""
    from ashvault.api import API
    from ashvault.catalog import JobState
    from ashvault.conf import make_config
    from ashvault.workers.worker import Worker

    random_volume(slow, tmp_path / "v.img")
    b = slow.j("backup", "create", "v", "--no-wait")
    api = API(make_config([], [str(slow.conf)]), cleanup=False)
    try:
        rows = api.catalog.list_jobs(backup_id=b["id"], state=JobState.RUNNING)
        assert len(rows) == 1
        assert Worker(api.conf, api.catalog).take_over() == []
        assert api.catalog.get_job(rows[0].id).state == JobState.RUNNING
    finally:
        api.close()
    done = wait_for("the backup", lambda: (s := slow.j("backup", "show", b["id"]))["status"] != "creating" and s, 60)
    assert done["status"] == "available", done["fail_reason"]


def test_a_typed_passphrase_reaches_the_detached_job_and_nothing_else(tmp_path: pathlib.Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The interactive shell's typed passphrase goes to the child through a pipe: never argv, environment or log."""
    from ashvault import keys
    from ashvault.api import API
    from ashvault.conf import make_config

    av = Ashvault(tmp_path, "encryption = aes-256-gcm")
    path = random_volume(av, tmp_path / "v.img", MiB)
    secret = "typed-at-the-prompt-" + os.urandom(4).hex()
    monkeypatch.setattr(keys, "_typed_passphrase", secret)  # as the shell's prompt keeps it
    api = API(make_config([], [str(av.conf)]))
    try:
        b = api.backup_create("v", wait=False)
        assert b.status == "creating"
        done = wait_for("the backup", lambda: (s := api.catalog.get_backup(b.id)).status != "creating" and s, 60)
        assert done.status == "available", done.fail_reason
    finally:
        api.close()
    assert not [p for p in av.state.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    env = {**os.environ, keys.PASSPHRASE_ENV: secret}
    restored = subprocess.run([str(BIN / "ashvault"), "--config-file", str(av.conf), "backup", "restore", b.id,
                               "-f", "json"], capture_output=True, text=True, env=env, check=True)
    assert sha256(json.loads(restored.stdout)["volume_location"]) == sha256(path)
