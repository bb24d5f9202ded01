"""The corruption sweep: every stored object and manifest of a posix repository is flipped, truncated and deleted in
turn, and each damage must be detected and named by ``verify`` and by restore, with and without encryption.

Damage is done to the files on disk, under every wrapper of the core, as a failing disk or a careless hand would.
The counts are printed in the test output and must be 100%.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import random
import uuid

import pytest

from ashvault import exceptions, keys
from ashvault.chunked import ChunkedFormat
from ashvault.conf import make_config, register_group
from ashvault.driver import BackupInfo, JobContext
from ashvault.sources.file import FileSource
from ashvault.testing import volumes
from ashvault.testing.contract import route
from ashvault_posix.posix import PosixBackupDriver

MiB = 1 << 20
CONTAINER = "sweep"


def _posix_driver(tmp_path: pathlib.Path) -> PosixBackupDriver:
    conf = make_config([], config_files=[])
    conf.set_override("ashvault_state_path", str(tmp_path / "state"))
    register_group(conf, PosixBackupDriver.option_group, PosixBackupDriver.get_driver_options())
    conf.set_override("object_size", 1 << 20, group="backup_posix")
    return PosixBackupDriver(conf)


@dataclasses.dataclass
class Repo:
    driver: PosixBackupDriver
    backups: list[BackupInfo]
    wants: dict[str, str]
    users: dict[str, set[str]]
    """Object name -> ids of the backups that need it (their data, index or manifest)."""
    root: pathlib.Path


def _make_repo(tmp_path: pathlib.Path, encrypted: bool) -> Repo:
    driver = _posix_driver(tmp_path)
    driver.conf.set_override("container", CONTAINER, group="backup_posix")
    if encrypted:
        key = tmp_path / "key"
        key.write_bytes(os.urandom(32))
        driver.conf.set_override("encryption", "aes-256-gcm")
        driver.conf.set_override("encryption_key_file", str(key))
    path = volumes.write_mixed(str(tmp_path / "vol.img"), 6 * MiB, seed=1, run=MiB, zero=0.2, text=0.5)
    volume_id = str(uuid.uuid4())
    backups: list[BackupInfo] = []
    wants = {}
    for step in range(2):
        parent = backups[-1] if backups else None
        if parent:
            volumes.mutate(path, percent=20, seed=2)
        info = BackupInfo(id=str(uuid.uuid4()), volume_id=volume_id, parent=parent,
                          parent_id=parent.id if parent else None, name=f"b{step}")
        with FileSource(driver.conf).open_reader(path) as reader:
            res = route(driver, info).backup(info, reader, JobContext())
        info.container, info.service_metadata, info.size = res.container, res.service_metadata, res.size
        backups.append(info)
        wants[info.id] = volumes.sha256_file(path)
    users: dict[str, set[str]] = collections.defaultdict(set)
    for info in backups:
        manifest = ChunkedFormat.for_driver(driver).read_manifest(info)
        for name in manifest.referenced_names() | {f"{info.service_metadata}/manifest"}:
            users[name].add(info.id)
    root = pathlib.Path(driver.options.path) / CONTAINER
    stored = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    keys_stored = {n for n in stored if n.startswith(keys.KEY_PREFIX)}
    assert stored - keys_stored == set(users), "every stored object is needed by a backup"
    assert len(keys_stored) == (1 if encrypted else 0)
    for name in keys_stored:
        users[name] = {b.id for b in backups}
    return Repo(driver, backups, wants, users, root)


def _damages(data: bytes, rnd: random.Random) -> list[tuple[str, bytes | None]]:
    bit = rnd.randrange(8 * len(data))
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    last = bytearray(data)
    last[-1] ^= 0x80
    return [
        ("bit flip", bytes(flipped)),
        ("bit flip in the last byte", bytes(last)),
        ("truncation", data[: rnd.randrange(len(data))]),
        ("deletion", None),
    ]


def _names(err: BaseException, name: str, info: BackupInfo) -> bool:
    text = str(err)
    if "\n" in text:
        return False
    if name.startswith(keys.KEY_PREFIX):
        return name in text or "no key object" in text
    if name.endswith("/manifest") and isinstance(err, exceptions.InvalidBackup):
        return info.id in text and "manifest" in text
    return name in text and info.id in text


def _kind_of(name: str) -> str:
    if name.startswith(keys.KEY_PREFIX):
        return "key object"
    return {"manifest": "manifest", "index": "index"}.get(name.rsplit("/", 1)[-1], "data object")


def _check(driver: PosixBackupDriver, repo: Repo, info: BackupInfo, name: str, out: pathlib.Path) -> list[str]:
    """What verify and restore of ``info`` got wrong with ``name`` damaged: [] when both behaved."""
    needs = info.id in repo.users[name]
    wrong = []
    try:
        found = [n for n, _why in route(driver, info).verify(info, JobContext()).corrupt]
        if found != ([name] if needs else []):
            wrong.append(f"verify reported {found}")
    except exceptions.AshvaultError as exc:
        if not (needs and _names(exc, name, info)):
            wrong.append(f"verify: {type(exc).__name__}: {exc}")
    out.unlink(missing_ok=True)
    try:
        FileSource(driver.conf).create(str(out), info.size)
        with FileSource(driver.conf).open_writer(str(out)) as writer:
            route(driver, info).restore(info, writer, JobContext(), volume_is_new=True)
        if needs:
            wrong.append("restore ended without an error")
        elif volumes.sha256_file(out) != repo.wants[info.id]:
            wrong.append("restore wrote wrong bytes")
    except exceptions.AshvaultError as exc:
        if not (needs and _names(exc, name, info)):
            wrong.append(f"restore: {type(exc).__name__}: {exc}")
    return wrong


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_every_damage_is_detected_and_named(tmp_path: pathlib.Path, encrypted: bool,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    repo = _make_repo(tmp_path, encrypted)
    driver = repo.driver
    rnd = random.Random(7)
    injected: collections.Counter[str] = collections.Counter()
    checks: collections.Counter[str] = collections.Counter()
    passed: collections.Counter[str] = collections.Counter()
    missed: list[str] = []
    for name in sorted(repo.users):
        file = repo.root / name
        original = file.read_bytes()
        for damage, damaged in _damages(original, rnd):
            if damaged is None:
                file.unlink()
            else:
                file.write_bytes(damaged)
            driver.close()  # as a new process sees it: nothing cached, the key object read again
            injected[(_kind_of(name), damage)] += 1
            for info in repo.backups:
                wrong = _check(driver, repo, info, name, tmp_path / "out.img")
                what = "detected and named" if info.id in repo.users[name] else "untouched backup intact"
                checks[what] += 2
                passed[what] += 2 - len(wrong)
                missed += [f"{damage} of {name}, seen from {info.name}: {w}" for w in wrong]
            file.write_bytes(original)
    mode = "encrypted" if encrypted else "plain"
    with capsys.disabled():  # the counts belong in every run's output, CI's included
        print(f"\ncorruption sweep ({mode}): {sum(injected.values())} damages to {len(repo.users)} stored objects; "
              + "; ".join(f"{k}: {passed[k]}/{checks[k]} verify and restore checks" for k in sorted(checks)))
        for (kind, damage), n in sorted(injected.items()):
            print(f"  {kind:12} {damage:26} {n}")
    assert not missed, "\n".join(missed)
    assert checks["detected and named"] == passed["detected and named"] > 0
    driver.close()
    for info in repo.backups:
        assert route(driver, info).verify(info, JobContext()).ok
