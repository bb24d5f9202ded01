"""ashvault.check through the API: a store that cannot tell sizes, and formats that only verify in full."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from ashvault import check, exceptions
from ashvault.api import API
from ashvault.conf import make_config, register_group
from ashvault.testing import volumes
from ashvault.testing.fakes import MemoryBackupDriver

MiB = 1 << 20


@pytest.fixture
def api(tmp_path: pathlib.Path) -> Iterator[API]:
    conf = make_config([], config_files=[])
    conf.set_override("ashvault_state_path", str(tmp_path / "state"))
    conf.set_override("backup_driver", "memory")
    register_group(conf, MemoryBackupDriver.option_group, MemoryBackupDriver.get_driver_options())
    MemoryBackupDriver.shared_buckets.clear()
    api = API(conf)
    api.manager._drivers["memory"] = MemoryBackupDriver(conf)  # as if loaded from its entry point
    try:
        yield api
    finally:
        api.close()


def test_metadata_only_checks_presence_where_the_store_cannot_tell_sizes(api: API, tmp_path: pathlib.Path) -> None:
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=3, run=MiB, zero=0, text=0)
    api.volume_register("v", path)
    made = api.backup_create("v")
    bucket = MemoryBackupDriver.shared_buckets["volumebackups"]
    data = sorted(n for n in bucket if n.rsplit("/", 1)[1].startswith("d"))
    assert len(data) == 4
    bucket[data[0]] = bucket[data[0]][:-1]
    meta = check.CheckMode(check.METADATA)
    report = api.backup_verify(made.id, mode=meta)
    assert report.ok and report.objects_checked == 5, "a shorter object is present: sizes are not known here"
    del bucket[data[1]]
    with pytest.raises(exceptions.IntegrityError, match="object is missing"):
        api.backup_verify(made.id, mode=meta)
    rec = api.backup_get(made.id)
    assert rec.status == "error" and rec.fail_reason == f"verify failed: {data[1]}: object is missing"
    [row] = api.backup_verify_all(mode=check.CheckMode(check.SAMPLE, 50, seed=1))
    assert row.objects_checked == 3, "two of four data objects, and the index"
    assert api.backup_get(made.id).status == "error", "a sample never clears a verify failure"
    [row] = api.backup_verify_all(mode=check.CheckMode(check.SAMPLE, 100))
    assert row.result == check.FAILED and row.problem == f"{data[0]}: hash mismatch (1 more damaged objects)"
    with pytest.raises(exceptions.InvalidInput):
        check.CheckMode(check.SAMPLE, 0)


def test_partial_checks_are_not_supported_for_other_formats(api: API, tmp_path: pathlib.Path) -> None:
    path = volumes.write_mixed(str(tmp_path / "v.img"), MiB, seed=4, run=MiB)
    api.volume_register("v", path)
    made = api.backup_create("v")
    api.catalog.update_backup(made.id, None, format="cinder-chunked/1")
    [row] = api.backup_verify_all(mode=check.CheckMode(check.METADATA))
    assert row.result == check.UNSUPPORTED and "--metadata-only" in (row.problem or "")
    assert api.backup_get(made.id).status == "available", "not supported marks nothing"
