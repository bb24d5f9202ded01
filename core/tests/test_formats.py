"""The core's routing between the tiers (format tags) and jobs as plain requests."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
from typing import Any, ClassVar

import pytest

from ashvault import check, exceptions, formats
from ashvault.api import API
from ashvault.catalog import Backup
from ashvault.chunked import ChunkedFormat
from ashvault.conf import make_config, register_group
from ashvault.driver import BackupDriver, BackupInfo, BackupResult, Capabilities, VerifyReport
from ashvault.jobs.job import Job, Kind
from ashvault.testing import volumes
from ashvault.testing.fakes import MemoryBackupDriver


class NativeOnly(BackupDriver):
    """A Tier 1 driver with no object store (as TSM will be)."""

    name = "native-only"
    option_group = "backup_native_only"
    capabilities: ClassVar[Capabilities] = Capabilities(native_sources=frozenset({"file"}))
    native_format: ClassVar[str] = "native-only/1"


@pytest.fixture
def memory() -> MemoryBackupDriver:
    conf = make_config([], config_files=[])
    register_group(conf, MemoryBackupDriver.option_group, MemoryBackupDriver.get_driver_options())
    return MemoryBackupDriver(conf)


def test_a_backup_goes_native_for_native_sources_and_chunked_otherwise(memory: MemoryBackupDriver) -> None:
    native = NativeOnly(make_config([], config_files=[]))
    assert formats.for_backup(native, "file") == "native-only/1"
    assert formats.for_backup(memory, "file") == formats.CHUNKED
    assert formats.for_backup(memory, "rbd") == formats.CHUNKED
    with pytest.raises(exceptions.NotSupported) as err:
        formats.for_backup(native, "rbd")
    assert "rbd" in str(err.value) and "\n" not in str(err.value)


def test_later_operations_follow_the_recorded_tag(memory: MemoryBackupDriver) -> None:
    native = NativeOnly(make_config([], config_files=[]))
    assert formats.handler(native, "native-only/1") is native
    chunked = formats.handler(memory, formats.CHUNKED)
    assert isinstance(chunked, ChunkedFormat) and chunked.store is memory.store
    for driver, tag in ((native, formats.CHUNKED), (memory, "native-only/1"), (memory, "nobody/9")):
        with pytest.raises(exceptions.NotSupported):
            formats.handler(driver, tag)


def test_a_new_tag_is_a_registration(memory: MemoryBackupDriver) -> None:
    made: list[BackupDriver] = []

    def reader(driver: BackupDriver) -> Any:
        made.append(driver)
        return ChunkedFormat.for_driver(driver)

    formats.register("test-reader/1", reader)
    formats.register("test-reader/1", reader)  # the same registration again is harmless
    assert isinstance(formats.handler(memory, "test-reader/1"), ChunkedFormat) and made == [memory]
    with pytest.raises(exceptions.ConfigurationError):
        formats.register("test-reader/1", ChunkedFormat.for_driver)


def test_a_job_is_a_plain_request() -> None:
    job = Job(Kind.RESTORE, "b-1", "v-1", {"volume_is_new": True})
    again = Job.from_json(job.to_json())
    assert again == job and again is not job
    assert Job.from_json(Job(Kind.DELETE, "b-2", options={"allowed": ["error"], "wait": 1.5}).to_json()).options == {
        "allowed": ["error"], "wait": 1.5}


def test_backup_info_is_the_record_s_fields() -> None:
    record = Backup(id="b", volume_id="v", status="available", name="n", container="c", service_metadata="m",
                    format="ceph-rbd/1", size=42)
    parent = BackupInfo(id="p", volume_id="v")
    info = BackupInfo.of(record, parent)
    shared = [f.name for f in dataclasses.fields(BackupInfo) if f.name != "parent"]
    assert {k: getattr(info, k) for k in shared} == {k: getattr(record, k) for k in shared}
    assert info.parent is parent and info.format == "ceph-rbd/1"


class FileCopy(BackupDriver):
    """Moves file volumes natively, as whole copies in a directory: enough to see the manager route to it."""

    name = "filecopy"
    option_group = "backup_filecopy"
    capabilities: ClassVar[Capabilities] = Capabilities(incremental=False, native_sources=frozenset({"file"}))
    native_format: ClassVar[str] = "filecopy/1"
    calls: ClassVar[list[str]] = []

    def _path(self, backup: BackupInfo) -> str:
        return os.path.join(self.conf.ashvault_state_path, f"copy-{backup.id}")

    def backup(self, backup: BackupInfo, source: Any, ctx: Any) -> BackupResult:
        self.calls.append("backup")
        data = source.pread(0, source.size)
        with open(self._path(backup), "wb") as f:
            f.write(data)
        return BackupResult(container="copies", service_metadata=self._path(backup), size=source.size)

    def restore(self, backup: BackupInfo, target: Any, ctx: Any, *, volume_is_new: bool) -> None:
        self.calls.append("restore")
        with open(backup.service_metadata or "", "rb") as f:
            target.pwrite(0, f.read())

    def verify(self, backup: BackupInfo, ctx: Any) -> VerifyReport:
        self.calls.append("verify")
        return VerifyReport(backup.id)

    def delete_backup(self, backup: BackupInfo, ctx: Any) -> None:
        self.calls.append("delete")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(backup))


def test_the_manager_runs_a_native_format_through_the_driver(tmp_path: pathlib.Path) -> None:
    conf = make_config([], config_files=[])
    conf.set_override("ashvault_state_path", str(tmp_path / "state"))
    conf.set_override("backup_driver", "filecopy")
    api = API(conf)
    try:
        api.manager._drivers["filecopy"] = FileCopy(conf)  # as if loaded from its entry point
        path = volumes.write_mixed(str(tmp_path / "v.img"), 2 << 20, seed=1, run=1 << 18)
        api.volume_register("v", path)
        made = api.backup_create("v")
        copy = os.path.join(conf.ashvault_state_path, f"copy-{made.id}")
        assert (made.status, made.format, made.service_metadata) == ("available", "filecopy/1", copy)
        with pytest.raises(exceptions.NotSupported):
            api.backup_create("v", incremental=True)
        api.backup_verify(made.id)
        [row] = api.backup_verify_all()
        assert row.result == "ok", "verify --all takes a native format's own verify"
        [row] = api.backup_verify_all(mode=check.CheckMode(check.METADATA))
        assert row.result == "not supported" and "--metadata-only" in (row.problem or "")
        _b, restored = api.backup_restore(made.id)
        assert volumes.sha256_file(restored.location) == volumes.sha256_file(path)
        assert api.backup_delete(made.id).status == "deleted"
        assert not os.path.exists(made.service_metadata or "")
        assert FileCopy.calls == ["backup", "verify", "verify", "restore", "delete"]
    finally:
        api.close()
