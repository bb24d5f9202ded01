"""The seed's walk-through and the fault cases through the ``ashvault`` command, against gcp-storage-emulator."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from clitools import Ashvault, MiB, one_line_error, sha256

from ashvault.testing import volumes
from ashvault_google.objectstore import GoogleObjectStore


def cinder_conf(gse: Any, bucket: str, extra: str = "", *, url: str | None = None) -> str:
    """``[DEFAULT]`` lines as a Cinder operator has them (4 MiB objects), then the emulator's endpoint."""
    return (f"backup_gcs_bucket = {bucket}\nbackup_gcs_project_id = ashvault-test\n"
            f"backup_gcs_object_size = {4 * MiB}\nbackup_gcs_block_size = 32768\n"
            f"backup_gcs_num_retries = 3\nbackup_gcs_retry_error_codes = 429\n{extra}"
            f"[backup_google]\nanonymous = true\nendpoint = {url or gse.url}\n")


@pytest.fixture
def av(tmp_path: pathlib.Path, gse: Any, bucket: str) -> Ashvault:
    av = Ashvault(tmp_path)
    av.write_conf(cinder_conf(gse, bucket), driver="cinder.backup.drivers.gcs.GoogleBackupDriver")
    return av


@pytest.fixture
def store(new_store: Callable[..., GoogleObjectStore]) -> GoogleObjectStore:
    return new_store()


def fill(path: str, size: int, seed: int) -> None:
    """Write mixed data (random, text, zeros) over the start of an existing sparse volume file."""
    tmp = path + ".seed"
    volumes.write_mixed(tmp, size, seed=seed, run=MiB)
    with open(tmp, "rb") as src, open(path, "r+b") as dst:
        dst.write(src.read())
    os.unlink(tmp)


def test_walkthrough_create_incremental_verify_restore_delete(av: Ashvault, store: GoogleObjectStore,
                                                              bucket: str) -> None:
    shown = av.j("driver", "show", "gcs", "--check")
    assert shown["check"] == "ok" and shown["default"] is True and shown["name"] == "google"
    assert shown["options"]["object_size"] == 4 * MiB and shown["options"]["container"] == bucket
    assert "proxy_url" in shown["options"] and shown["options"]["anonymous"] is True
    assert shown["options"]["retry_error_codes"] == "['429']" and shown["options"]["storage_class"] == "NEARLINE"
    vol = av.j("volume", "create", "volume1", "--size", "0.0625")
    fill(vol["location"], 40 * MiB, seed=1)
    full = av.j("backup", "create", "volume1", "--name", "full")
    assert full["status"] == "available" and full["container"] == bucket and full["service"] == "google"
    assert store.list_objects(bucket, f"volume_{vol['id']}/"), "the backup is in the bucket"
    volumes.mutate(vol["location"], percent=3, seed=2)
    want = sha256(vol["location"])
    inc = av.j("backup", "create", "volume1", "--name", "inc", "--incremental")
    assert inc["is_incremental"] and inc["parent_id"] == full["id"]
    assert inc["stored_bytes"] < 0.1 * 64 * MiB, "only changed blocks are stored"
    assert av.j("backup", "verify", "inc")["result"] == "ok"
    restored = av.j("backup", "restore", "inc")
    assert sha256(restored["volume_location"]) == want
    with open(vol["location"], "r+b") as f:
        f.write(os.urandom(MiB))
    av("backup", "restore", "inc", "volume1", "--force")
    assert sha256(vol["location"]) == want
    assert [d["status"] for d in av.j("backup", "delete", "inc", "full")] == ["deleted", "deleted"]
    assert av.j("backup", "list") == []
    assert store.list_objects(bucket) == [], "delete left objects in the bucket"


def _start_slow_backup(av: Ashvault, gse: Any, bucket: str, tmp_path: pathlib.Path, *, seed: int, name: str,
                       extra: str = "") -> tuple[subprocess.Popen[str], str]:
    """A 48 MiB backup throttled to 8 MiB/s (about 6 s), running in the background."""
    av.write_conf(cinder_conf(gse, bucket, f"backup_bandwidth_limit = {8 * MiB}\n{extra}"), driver="gcs")
    path = str(tmp_path / f"{name}.img")
    volumes.write_mixed(path, 48 * MiB, seed=seed, run=MiB, zero=0, text=0)
    av.j("volume", "register", name, path)
    return av.popen("backup", "create", name, "--name", name, "-f", "json"), path


def _wait_for_objects(store: GoogleObjectStore, bucket: str, proc: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + 60
    while len(store.list_objects(bucket)) < count:
        assert proc.poll() is None, f"the backup ended before the fault: {proc.communicate()}"
        assert time.monotonic() < deadline, "the backup made no progress"
        time.sleep(0.1)


def test_emulator_stopped_and_restarted_mid_backup_completes(av: Ashvault, gse: Any, store: GoogleObjectStore,
                                                             bucket: str, tmp_path: pathlib.Path) -> None:
    proc, path = _start_slow_backup(av, gse, bucket, tmp_path, seed=11, name="v")
    _wait_for_objects(store, bucket, proc, 3)
    gse.stop()
    time.sleep(1.0)
    assert proc.poll() is None, "the backup gave up at once"
    gse.start()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert json.loads(out)["status"] == "available"
    assert av.j("backup", "verify", "v")["result"] == "ok"
    assert sha256(av.j("backup", "restore", "v")["volume_location"]) == sha256(path)


def test_emulator_gone_for_good_fails_cleanly(av: Ashvault, gse: Any, store: GoogleObjectStore, bucket: str,
                                              tmp_path: pathlib.Path) -> None:
    earlier_path = str(tmp_path / "earlier.img")
    volumes.write_mixed(earlier_path, 8 * MiB, seed=21, run=MiB)
    av.j("volume", "register", "earlier", earlier_path)
    earlier = av.j("backup", "create", "earlier", "--name", "earlier")
    proc, _path = _start_slow_backup(av, gse, bucket, tmp_path, seed=22, name="doomed",
                                     extra="backup_gcs_num_retries = 1\n")
    _wait_for_objects(store, bucket, proc, len(store.list_objects(bucket)) + 3)
    gse.stop()
    try:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode != 0, out
        line = [ln for ln in err.splitlines() if ln.startswith("ashvault: error:")]
        assert len(line) == 1, err
        assert f"cannot reach Google Cloud Storage at {gse.url}" in line[0] and "connection refused" in line[0], err
        doomed = av.j("backup", "show", "doomed")
        assert doomed["status"] == "error" and "cannot reach Google Cloud Storage" in doomed["fail_reason"]
        assert "\n" not in doomed["fail_reason"]
        assert {b["name"]: b["status"] for b in av.j("backup", "list")} == {"earlier": "available",
                                                                             "doomed": "error"}
    finally:
        gse.start()
    assert sha256(av.j("backup", "restore", earlier["id"])["volume_location"]) == sha256(earlier_path)
    av("backup", "delete", "doomed")
    remaining = store.list_objects(bucket)
    assert remaining and all(earlier["volume_id"] in n for n in remaining), remaining


def test_missing_bucket_unreachable_endpoint_and_no_bucket(av: Ashvault, gse: Any, bucket: str) -> None:
    av.write_conf(cinder_conf(gse, bucket, "backup_create_containers = false\n"), driver="google")
    line = one_line_error(av("driver", "show", "google", "--check", ok=False))
    assert f"container '{bucket}' does not exist" in line and "backup_create_containers" in line, line
    av.j("volume", "create", "v", "--size", "0.01")
    line = one_line_error(av("backup", "create", "v", ok=False))
    assert f"container '{bucket}' does not exist" in line, line
    av.write_conf(cinder_conf(gse, bucket, "backup_gcs_num_retries = 0\nbackup_object_retry_attempts = 1\n",
                              url="http://127.0.0.1:9"), driver="google")
    line = one_line_error(av("driver", "show", "google", "--check", ok=False))
    assert "cannot reach Google Cloud Storage at http://127.0.0.1:9" in line and "connection refused" in line, line
    av.write_conf(cinder_conf(gse, bucket).replace(f"backup_gcs_bucket = {bucket}\n", ""), driver="google")
    line = one_line_error(av("driver", "show", "google", "--check", ok=False))
    assert "backup_gcs_bucket" in line and "not set" in line, line


def test_object_corrupted_in_the_emulator_is_named_by_verify(av: Ashvault, gse: Any, store: GoogleObjectStore,
                                                             bucket: str, tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 16 * MiB, seed=31, run=MiB, zero=0, text=0)
    av.j("volume", "register", "v", path)
    b = av.j("backup", "create", "v")
    data = [n for n in store.list_objects(bucket) if n.rsplit("/", 1)[-1].startswith("d")]
    victim = data[len(data) // 2]
    blob = store.client.bucket(bucket).blob(victim)
    body = bytearray(blob.download_as_bytes())
    body[len(body) // 2] ^= 0xFF
    blob.upload_from_string(bytes(body))  # a writer that is not ashvault, as on a damaged or tampered bucket
    res = av("backup", "verify", b["id"], ok=False)
    line = one_line_error(res)
    assert victim in line and b["id"] in line, line
