"""The seed's walk-through and the fault cases through the ``ashvault`` command, against the real Swift."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from clitools import Ashvault, MiB, one_line_error, sha256

from ashvault.testing import volumes
from ashvault_swift.objectstore import SwiftObjectStore


def cinder_conf(swift: Any, container: str, *, key: str = "testing", extra: str = "") -> str:
    """``[DEFAULT]`` lines as a Cinder operator has them (services.md D.1), 4 MiB objects."""
    return (f"backup_swift_auth = single_user\nbackup_swift_auth_version = 1\n"
            f"backup_swift_auth_url = {swift.auth_url}\nbackup_swift_user = test:tester\n"
            f"backup_swift_key = {key}\nbackup_swift_container = {container}\n"
            f"backup_swift_object_size = {4 * MiB}\n{extra}")


@pytest.fixture
def container() -> str:
    return f"cli-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def av(tmp_path: pathlib.Path, swift: Any, container: str) -> Ashvault:
    av = Ashvault(tmp_path)
    av.write_conf(cinder_conf(swift, container), driver="cinder.backup.drivers.swift.SwiftBackupDriver")
    return av


@pytest.fixture
def store(new_store: Callable[..., SwiftObjectStore]) -> SwiftObjectStore:
    return new_store()


def fill(path: str, size: int, seed: int) -> None:
    """Write mixed data (random, text, zeros) over the start of an existing sparse volume file."""
    tmp = path + ".seed"
    volumes.write_mixed(tmp, size, seed=seed, run=MiB)
    with open(tmp, "rb") as src, open(path, "r+b") as dst:
        dst.write(src.read())
    os.unlink(tmp)


def test_walkthrough_create_incremental_verify_restore_delete(av: Ashvault, store: SwiftObjectStore,
                                                              container: str) -> None:
    shown = av.j("driver", "show", "swift", "--check")
    assert shown["check"] == "ok" and shown["default"] is True
    assert shown["options"]["key"] == "****" and "testing" not in str(shown)
    assert shown["options"]["object_size"] == 4 * MiB and shown["options"]["container"] == container
    vol = av.j("volume", "create", "volume1", "--size", "0.0625")
    fill(vol["location"], 40 * MiB, seed=1)
    full = av.j("backup", "create", "volume1", "--name", "full")
    assert full["status"] == "available" and full["container"] == container and full["service"] == "swift"
    assert store.list_objects(container, f"volume_{vol['id']}/"), "the backup is in Swift"
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
    assert store.list_objects(container) == [], "delete left objects in Swift"


def _start_slow_backup(av: Ashvault, swift: Any, container: str, tmp_path: pathlib.Path, *, seed: int,
                       name: str) -> tuple[subprocess.Popen[str], str]:
    """A 48 MiB backup throttled to 8 MiB/s (about 6 s), running in the background."""
    av.write_conf(cinder_conf(swift, container, extra=f"backup_bandwidth_limit = {8 * MiB}\n"), driver="swift")
    path = str(tmp_path / f"{name}.img")
    volumes.write_mixed(path, 48 * MiB, seed=seed, run=MiB, zero=0, text=0)
    av.j("volume", "register", name, path)
    return av.popen("backup", "create", name, "--name", name, "-f", "json"), path


def _wait_for_objects(store: SwiftObjectStore, container: str, proc: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + 60
    while len(store.list_objects(container)) < count:
        assert proc.poll() is None, f"the backup ended before the fault: {proc.communicate()}"
        assert time.monotonic() < deadline, "the backup made no progress"
        time.sleep(0.1)


def test_proxy_killed_and_restarted_mid_backup_completes(av: Ashvault, swift: Any, store: SwiftObjectStore,
                                                         container: str, tmp_path: pathlib.Path) -> None:
    proc, path = _start_slow_backup(av, swift, container, tmp_path, seed=11, name="v")
    _wait_for_objects(store, container, proc, 3)
    swift.stop("proxy", signal.SIGKILL)
    time.sleep(1.0)
    assert proc.poll() is None
    swift.start("proxy")
    swift.wait_ready()
    _out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "try 2 of" in err or "try 3 of" in err, f"no retry happened: {err}"
    assert av.j("backup", "show", "v")["status"] == "available"
    assert av.j("backup", "verify", "v")["result"] == "ok"
    assert sha256(av.j("backup", "restore", "v")["volume_location"]) == sha256(path)


def test_proxy_killed_and_restarted_mid_restore_completes(av: Ashvault, swift: Any, container: str,
                                                          tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 48 * MiB, seed=15, run=MiB, zero=0, text=0)
    av.j("volume", "register", "v", path)
    b = av.j("backup", "create", "v")
    av.write_conf(cinder_conf(swift, container, extra=f"backup_bandwidth_limit = {8 * MiB}\n"), driver="swift")
    proc = av.popen("backup", "restore", b["id"], "--name", "restored", "-f", "json")
    deadline = time.monotonic() + 60
    while _allocated(av.state / "volumes") < 8 * MiB:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    swift.stop("proxy", signal.SIGKILL)
    time.sleep(1.0)
    swift.start("proxy")
    swift.wait_ready()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "try 2 of" in err or "try 3 of" in err, f"no retry happened: {err}"
    assert sha256(json.loads(out)["volume_location"]) == sha256(path)


def _allocated(directory: pathlib.Path) -> int:
    """Bytes allocated to the files in ``directory`` (a restore fills its new volume file)."""
    if not directory.is_dir():
        return 0
    return sum(p.stat().st_blocks * 512 for p in directory.iterdir() if p.is_file())


def test_proxy_gone_for_good_fails_cleanly(av: Ashvault, swift: Any, store: SwiftObjectStore, container: str,
                                           tmp_path: pathlib.Path) -> None:
    earlier_path = str(tmp_path / "earlier.img")
    volumes.write_mixed(earlier_path, 8 * MiB, seed=21, run=MiB)
    av.j("volume", "register", "earlier", earlier_path)
    earlier = av.j("backup", "create", "earlier", "--name", "earlier")
    proc, _path = _start_slow_backup(av, swift, container, tmp_path, seed=22, name="doomed")
    _wait_for_objects(store, container, proc, len(store.list_objects(container)) + 3)
    swift.stop("proxy", signal.SIGKILL)
    try:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode != 0, out
        line = [ln for ln in err.splitlines() if ln.startswith("ashvault: error:")]
        assert len(line) == 1 and "cannot reach Swift" in line[0] and "connection refused" in line[0], err
        doomed = av.j("backup", "show", "doomed")
        assert doomed["status"] == "error" and "cannot reach Swift" in doomed["fail_reason"]
        assert "\n" not in doomed["fail_reason"]
        assert {b["name"]: b["status"] for b in av.j("backup", "list")} == {"earlier": "available",
                                                                             "doomed": "error"}
        assert "error" in one_line_error(av("backup", "restore", "doomed", ok=False))
    finally:
        swift.start("proxy")
        swift.wait_ready()
    assert sha256(av.j("backup", "restore", earlier["id"])["volume_location"]) == sha256(earlier_path)
    av("backup", "delete", "doomed")
    remaining = store.list_objects(container)
    assert remaining and all(earlier["volume_id"] in n for n in remaining), remaining


def test_wrong_key_is_a_clear_authentication_error(av: Ashvault, swift: Any, container: str) -> None:
    av.write_conf(cinder_conf(swift, container, key="not-the-key"), driver="swift")
    av.j("volume", "create", "v", "--size", "0.01")
    for args in (("backup", "create", "v"), ("driver", "show", "swift", "--check")):
        res = av(*args, ok=False)
        line = one_line_error(res)
        assert "refused user 'test:tester'" in line and "check user and key" in line, line
        assert "not-the-key" not in res.err + res.out
    assert av.j("backup", "list")[0]["status"] == "error"


def test_unreachable_endpoint_and_missing_container(av: Ashvault, swift: Any, container: str,
                                                    tmp_path: pathlib.Path) -> None:
    dead = cinder_conf(swift, container).replace(swift.auth_url, "http://127.0.0.1:9/auth/v1.0")
    av.write_conf(dead, driver="swift")
    line = one_line_error(av("driver", "show", "swift", "--check", ok=False))
    assert "cannot reach http://127.0.0.1:9/auth/v1.0: connection refused" in line, line
    av.write_conf(cinder_conf(swift, container, extra="backup_create_containers = false\n"), driver="swift")
    line = one_line_error(av("driver", "show", "swift", "--check", ok=False))
    assert f"container '{container}' does not exist" in line, line


def test_object_corrupted_inside_swift_is_named_by_verify(av: Ashvault, swift: Any, store: SwiftObjectStore,
                                                          container: str, tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 16 * MiB, seed=31, run=MiB, zero=0, text=0)
    av.j("volume", "register", "v", path)
    b = av.j("backup", "create", "v")
    data = [n for n in store.list_objects(container) if n.rsplit("/", 1)[-1].startswith("d")]
    victim = data[len(data) // 2]
    files = swift.object_files("AUTH_test", container, victim)
    assert len(files) == 1, files
    with open(files[0], "r+b") as f:
        f.seek(os.path.getsize(files[0]) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    res = av("backup", "verify", b["id"], ok=False)
    line = one_line_error(res)
    assert victim in line and b["id"] in line, line
