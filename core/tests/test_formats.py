"""The core's routing between the tiers (format tags) and jobs as plain requests."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import pytest

from ashvault import exceptions, formats
from ashvault.catalog import Backup
from ashvault.chunked import ChunkedFormat
from ashvault.conf import make_config, register_group
from ashvault.driver import BackupDriver, BackupInfo, Capabilities
from ashvault.jobs.job import Job, Kind
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
