"""The tsm driver against dsmc misbehaving: warnings (rc 8), errors (rc 12), a hang, garbage, a wrong password, a
missing object; and the command lines it builds, the password kept off them, the hard link, delete of exactly one
backup."""

from __future__ import annotations

import logging
import os
import pathlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ashvault import exceptions, formats
from ashvault.driver import BackupInfo, JobContext
from ashvault.sources.file import FileSource
from ashvault.testing import volumes
from ashvault_tsm.dsmc import parse
from ashvault_tsm.tsm import TSMBackupDriver

MiB = 1 << 20


def backup(driver: TSMBackupDriver, path: str, ctx: JobContext | None = None) -> BackupInfo:
    info = BackupInfo(id=str(uuid.uuid4()), volume_id="v1", format="tsm/1")
    with FileSource(driver.conf).open_reader(path) as reader:
        result = driver.backup(info, reader, ctx or JobContext())
    info.container, info.service_metadata, info.size = result.container, result.service_metadata, result.size
    return info


def restore(driver: TSMBackupDriver, info: BackupInfo, path: str, *, new: bool = True) -> str:
    src = FileSource(driver.conf)
    if new:
        src.create(path, info.size)
    with src.open_writer(path) as writer:
        driver.restore(info, writer, JobContext(), volume_is_new=new)
    return volumes.sha256_file(path)


@pytest.fixture
def vol(tmp_path: pathlib.Path) -> str:
    return volumes.write_mixed(str(tmp_path / "vol.img"), 8 * MiB, seed=1, run=MiB)


def test_command_lines_follow_dsmc_grammar_and_carry_no_password(driver: TSMBackupDriver, sim: Any, vol: str,
                                                                 tmp_path: pathlib.Path) -> None:
    info = backup(driver, vol)
    restore(driver, info, str(tmp_path / "out.img"))
    driver.delete_backup(info, JobContext())
    link = os.path.join(os.path.dirname(vol), f"backup-{info.id}")
    argvs = [c["argv"] for c in sim.calls()]
    words = [[w for w in a if not w.startswith("-")] for a in argvs]
    assert words == [["selective", link], ["query", "backup", link], ["restore", link, str(tmp_path / "out.img")],
                     ["query", "backup", link], ["delete", "backup", link]]
    assert "-compression=yes" in argvs[0] and "-replace=yes" in argvs[2]
    assert {"-noprompt", "-objtype=file", "-deltype=all"} <= set(argvs[4])
    assert all(any(w.startswith("-optfile=") for w in a) for a in argvs)
    assert all(sim.password not in " ".join(a) and not any(w.lower().startswith("-password") for w in a)
               for a in argvs)
    assert {c["password_from"] for c in sim.calls()} == {"optfile"}
    # the private options file is gone once each call ends
    assert not [w for a in argvs for w in a if w.startswith("-optfile=") and os.path.exists(w.split("=", 1)[1])]
    assert not os.path.exists(link)


def test_each_backup_is_its_own_object_and_delete_removes_exactly_one(driver: TSMBackupDriver, sim: Any, vol: str,
                                                                       tmp_path: pathlib.Path) -> None:
    first = backup(driver, vol)
    want_first = volumes.sha256_file(vol)
    volumes.mutate(vol, percent=10, seed=2)
    second = backup(driver, vol)
    objects = sim.objects()
    assert len(objects) == 2 and all(len(v) == 1 and v[0]["active"] for v in objects.values())
    driver.delete_backup(second, JobContext())
    assert sim.keys_for(second.id) == [] and len(sim.keys_for(first.id)) == 1
    assert restore(driver, first, str(tmp_path / "r.img")) == want_first
    driver.delete_backup(second, JobContext())  # idempotent


def test_a_hard_link_not_a_symlink(sim: Any, tmp_path: pathlib.Path) -> None:
    """Why the driver makes hard links: a file backup of a symbolic link stores the link, not the data."""
    data = tmp_path / "vol.img"
    data.write_bytes(os.urandom(MiB))
    (tmp_path / "soft").symlink_to(data)
    os.link(data, tmp_path / "hard")
    for name in ("soft", "hard"):
        assert sim.run("selective", f"-password={sim.password}", str(tmp_path / name)).returncode == 0
    stored = {k.rsplit("/", 1)[-1]: v[0]["size"] for k, v in sim.objects().items()}
    assert stored == {"soft": 0, "hard": MiB}


def test_rc8_with_the_object_backed_up_succeeds_and_logs_the_warning(driver: TSMBackupDriver, sim: Any, vol: str,
                                                                     tmp_path: pathlib.Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    sim.inject("backup", mode="warn", rc=8, msg="ANS1898W ***** Processed 8,388,608 bytes with warnings *****")
    with caplog.at_level(logging.WARNING):
        info = backup(driver, vol)
    assert any("ANS1898W" in r.getMessage() and "exit code 8" in r.getMessage() for r in caplog.records)
    assert restore(driver, info, str(tmp_path / "r.img")) == volumes.sha256_file(vol)


def test_rc8_with_the_object_skipped_fails_naming_the_warning(driver: TSMBackupDriver, sim: Any, vol: str) -> None:
    sim.inject("backup", mode="skip")
    with pytest.raises(exceptions.DriverError) as err:
        backup(driver, vol)
    assert "ANS4037W" in str(err.value) and "exit code 8" in str(err.value)
    assert sim.objects() == {}
    assert not [p for p in os.listdir(os.path.dirname(vol)) if p.startswith("backup-")]


def test_rc12_fails_with_dsmcs_own_message(driver: TSMBackupDriver, sim: Any, vol: str) -> None:
    sim.inject("backup", mode="fail", msg="ANS1228E Sending of object '/x' failed")
    with pytest.raises(exceptions.DriverError) as err:
        backup(driver, vol)
    assert "ANS1228E Sending of object '/x' failed" in str(err.value) and "exit code 12" in str(err.value)
    assert sim.objects() == {}


def test_garbage_output_with_rc0_is_not_trusted(driver: TSMBackupDriver, sim: Any, vol: str) -> None:
    sim.inject("backup", mode="garbage", rc=0)
    with pytest.raises(exceptions.DriverError) as err:
        backup(driver, vol)
    assert "printed no 'Total number of objects backed up' line" in str(err.value)


def test_summary_hidden_by_quiet_is_not_trusted_either() -> None:
    out = parse(0, "Selective Backup function invoked.\n")
    assert out.count("Total number of objects backed up") is None
    out = parse(0, "Total number of objects backed up:      1,234\nTotal number of bytes transferred:   2.50 MB\n")
    assert out.count("Total number of objects backed up") == 1234 and out.transferred() == int(2.5 * MiB)


def test_a_hanging_dsmc_is_stopped_after_the_timeout(make_driver: Callable[..., TSMBackupDriver], sim: Any,
                                                     vol: str) -> None:
    driver = make_driver(timeout=2)
    sim.inject("backup", mode="hang", seconds=600)
    start = time.monotonic()
    with pytest.raises(exceptions.TransientDriverError) as err:
        backup(driver, vol)
    assert time.monotonic() - start < 15
    assert "did not finish within 2 s" in str(err.value)
    assert not _running_simulators(sim)
    assert sim.objects() == {} and not [p for p in os.listdir(os.path.dirname(vol)) if p.startswith("backup-")]


def _running_simulators(sim: Any) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if f"DSMC_SIM_DIR={sim.dir}".encode() in env:
            found.append(int(pid))
    return found


def test_a_cancelled_backup_stops_dsmc(driver: TSMBackupDriver, sim: Any, vol: str) -> None:
    sim.inject("backup", mode="hang", seconds=600)
    flag = threading.Event()
    ctx = JobContext(is_cancelled=flag.is_set, cancel_error=exceptions.BackupCancelled)
    threading.Timer(1.0, flag.set).start()
    with pytest.raises(exceptions.BackupCancelled):
        backup(driver, vol, ctx)
    assert not _running_simulators(sim)


def test_wrong_password_is_an_authentication_error(make_driver: Callable[..., TSMBackupDriver], sim: Any,
                                                   vol: str) -> None:
    driver = make_driver(password="not-the-password")
    with pytest.raises(exceptions.DriverSetupError) as err:
        driver.check_for_setup_error()
    assert "ANS1025E" in str(err.value) and "not-the-password" not in str(err.value)
    with pytest.raises(exceptions.AuthenticationFailed):
        backup(driver, vol)


def test_missing_dsmc_is_a_setup_error(make_driver: Callable[..., TSMBackupDriver]) -> None:
    driver = make_driver(dsmc_path="/nonexistent/dsmc")
    with pytest.raises(exceptions.DriverSetupError) as err:
        driver.check_for_setup_error()
    assert "/nonexistent/dsmc" in str(err.value)


def test_restore_of_an_object_the_server_lacks_is_a_clear_error(driver: TSMBackupDriver, sim: Any, vol: str,
                                                                tmp_path: pathlib.Path) -> None:
    info = backup(driver, vol)
    assert sim.run("delete", "backup", "-noprompt", f"-password={sim.password}",
                   os.path.join(os.path.dirname(vol), f"backup-{info.id}")).returncode == 0
    before = len(sim.calls())
    with pytest.raises(exceptions.InvalidBackup) as err:
        restore(driver, info, str(tmp_path / "r.img"))
    assert "holds no file object" in str(err.value) and info.id in str(err.value)
    assert [c["argv"][:2] for c in sim.calls()[before:]] == [["query", "backup"]]  # no restore was attempted


def test_incremental_is_refused_in_one_line(driver: TSMBackupDriver, vol: str) -> None:
    full = backup(driver, vol)
    info = BackupInfo(id=str(uuid.uuid4()), volume_id="v1", parent=full, parent_id=full.id, format="tsm/1")
    with FileSource(driver.conf).open_reader(vol) as reader, pytest.raises(exceptions.NotSupported) as err:
        driver.backup(info, reader, JobContext())
    assert "\n" not in str(err.value) and "incremental" in str(err.value)


def test_the_core_routes_file_volumes_to_tsm_and_refuses_the_rest(driver: TSMBackupDriver) -> None:
    assert formats.for_backup(driver, "file") == "tsm/1"
    assert formats.handler(driver, "tsm/1") is driver
    with pytest.raises(exceptions.NotSupported) as err:
        formats.for_backup(driver, "rbd")
    assert "cannot back up rbd volumes (it moves file natively and offers no object store)" in str(err.value)
    with pytest.raises(exceptions.NotSupported):
        formats.handler(driver, formats.CHUNKED)


def test_a_backup_that_failed_before_dsmc_deletes_without_it(driver: TSMBackupDriver, sim: Any,
                                                             tmp_path: pathlib.Path) -> None:
    info = BackupInfo(id=str(uuid.uuid4()), volume_id="v1", format="tsm/1")
    with FileSource(driver.conf).open_reader("/dev/null") as reader, pytest.raises(exceptions.InvalidVolume):
        driver.backup(info, reader, JobContext())
    driver.delete_backup(info, JobContext())
    with pytest.raises(exceptions.InvalidBackup, match="records no TSM object"):
        restore(driver, info, str(tmp_path / "r.img"))
    assert sim.calls() == []


def test_password_never_logged_or_in_errors(make_driver: Callable[..., TSMBackupDriver], sim: Any, vol: str,
                                            tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    driver = make_driver()
    texts = []
    with caplog.at_level(logging.DEBUG):
        info = backup(driver, vol)
        restore(driver, info, str(tmp_path / "r.img"))
        for op, fault in (("backup", {"mode": "fail"}), ("restore", {"mode": "garbage", "rc": 12})):
            sim.inject(op, **fault)
            with pytest.raises(exceptions.AshvaultError) as err:
                backup(driver, vol) if op == "backup" else restore(driver, info, str(tmp_path / "r2.img"))
            texts.append(str(err.value))
        driver.delete_backup(info, JobContext())
    texts += [r.getMessage() for r in caplog.records]
    assert any("running" in t and "-optfile=" in t for t in texts)  # the command lines were logged ...
    assert not [t for t in texts if sim.password in t]  # ... without the password


def test_password_never_on_a_process_command_line(driver: TSMBackupDriver, sim: Any, vol: str) -> None:
    """While dsmc runs (held by an injected delay), no process's command line shows the password."""
    sim.inject("backup", mode="hang", seconds=3)
    seen: list[str] = []
    done = threading.Event()

    def scan() -> None:
        while not done.is_set():
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

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        backup(driver, vol)
    finally:
        done.set()
        scanner.join()
    assert any("selective" in c for c in seen)  # the scan did see dsmc running
    assert not [c for c in seen if sim.password in c]


def test_simulator_grammar(sim: Any, tmp_path: pathlib.Path) -> None:
    """The simulator refuses what dsmc refuses, so a wrong command line in the driver cannot pass unnoticed."""
    path = tmp_path / "f.img"
    path.write_bytes(os.urandom(4096))
    pw = f"-password={sim.password}"
    assert sim.run("q", "se", pw).returncode == 0
    bad = sim.run("sel", "-bogus", pw, str(path))
    assert bad.returncode == 12 and "ANS1108E" in bad.stdout
    assert sim.run("backup", pw, str(path)).returncode == 12  # Cinder's undocumented form
    image_of_file = sim.run("backup", "image", pw, str(path))
    assert image_of_file.returncode == 12 and "ANS1063E" in image_of_file.stdout
    quiet = sim.run("SEL", "-QUIET", pw, str(path))
    assert quiet.returncode == 0 and "IBM Spectrum Protect" not in quiet.stdout
    assert "Total number of objects backed up:" in quiet.stdout
    prompt = sim.run("del", "ba", pw, str(path))  # no -noprompt and no answer on stdin
    assert prompt.returncode == 8 and "ANS1369W" in prompt.stdout
    assert sim.run("del", "ba", "-noprompt", pw, str(path)).returncode == 0
    none = sim.run("q", "ba", pw, str(path))
    assert none.returncode == 8 and "ANS1092W" in none.stdout
