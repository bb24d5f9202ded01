"""Encryption at rest over the in-memory store: the conformance suite encrypted, keys, tampering, passphrase change."""

from __future__ import annotations

import os
import pathlib
import uuid

import pytest

from ashvault import exceptions, keys
from ashvault.chunked import ChunkedBackupDriver
from ashvault.conf import make_config, register_group
from ashvault.driver import BackupDriver, BackupInfo, Capabilities, JobContext
from ashvault.sources.file import FileSource
from ashvault.testing import volumes
from ashvault.testing.contract import DriverContract, route
from ashvault.testing.fakes import MemoryBackupDriver, MemoryObjectStore
from ashvault.testing.faults import FaultContract
from ashvault.wrappers.encryption import MAGIC, OVERHEAD, EncryptedObjectStore

MiB = 1 << 20
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    # The memory-hard cost is the point in production; here it would only slow the suite down.
    monkeypatch.setattr(keys, "SCRYPT_N", 1 << 12)
    monkeypatch.delenv(keys.PASSPHRASE_ENV, raising=False)


@pytest.fixture
def key_file(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "ashvault.key"
    path.write_bytes(os.urandom(32))
    return str(path)


def make_driver(*, encryption: str = "aes-256-gcm", key_file: str | None = None,
                clear: bool = True) -> MemoryBackupDriver:
    conf = make_config([], config_files=[])
    register_group(conf, MemoryBackupDriver.option_group, MemoryBackupDriver.get_driver_options())
    conf.set_override("encryption", encryption)
    if key_file:
        conf.set_override("encryption_key_file", key_file)
    if clear:
        MemoryBackupDriver.shared_buckets.clear()
    return MemoryBackupDriver(conf)


def raw_objects(container: str = "volumebackups") -> dict[str, bytes]:
    return dict(MemoryBackupDriver.shared_buckets.get(container, {}))


def backup(driver: MemoryBackupDriver, path: str, parent: BackupInfo | None = None) -> BackupInfo:
    info = BackupInfo(id=str(uuid.uuid4()), volume_id="vol", parent=parent, parent_id=parent.id if parent else None)
    with FileSource(driver.conf).open_reader(path) as reader:
        res = route(driver, info).backup(info, reader, JobContext())
    info.container, info.service_metadata, info.size = res.container, res.service_metadata, res.size
    return info


def restore(driver: MemoryBackupDriver, info: BackupInfo, path: str) -> str:
    src = FileSource(driver.conf)
    src.create(path, info.size)
    with src.open_writer(path) as writer:
        route(driver, info).restore(info, writer, JobContext(), volume_is_new=True)
    return volumes.sha256_file(path)


class TestEncryptedMemoryDriver(DriverContract):
    """The whole driver conformance suite, with every object encrypted."""

    volume_size = 8 * MiB

    @pytest.fixture
    def driver(self, key_file: str) -> MemoryBackupDriver:
        return make_driver(key_file=key_file)


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "chacha20-poly1305"])
def test_stored_bytes_and_names_reveal_nothing(tmp_path: pathlib.Path, key_file: str, cipher: str) -> None:
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=1, run=MiB, zero=0, text=1)
    plain = make_driver(encryption="none")
    plain_info = backup(plain, path)
    plain_names = {n.replace(plain_info.id, "B") for n in raw_objects()}
    driver = make_driver(encryption=cipher, key_file=key_file)
    info = backup(driver, path)
    stored = raw_objects()
    key_names = [n for n in stored if n.startswith(keys.KEY_PREFIX)]
    assert len(key_names) == 1
    assert f'"cipher": "{cipher}"' in stored[key_names[0]].decode()
    # The names are the ones an unencrypted backup has: sequence numbers, never derived from content.
    assert {n.replace(info.id, "B") for n in stored if n not in key_names} == plain_names
    sample = pathlib.Path(path).read_bytes()[100:140]
    for name, data in stored.items():
        if name in key_names:
            continue
        assert data.startswith(MAGIC) and len(data) >= OVERHEAD, name
        assert sample not in data and b"ashvault-backup" not in data and b"volume" not in data, name
    assert restore(driver, info, str(tmp_path / "out.img")) == volumes.sha256_file(path)


def test_swapped_objects_and_manifests_are_named_and_never_restored(tmp_path: pathlib.Path, key_file: str) -> None:
    driver = make_driver(key_file=key_file)
    path = volumes.write_mixed(str(tmp_path / "v.img"), 6 * MiB, seed=2, run=MiB, zero=0, text=0.5)
    a = backup(driver, path)
    volumes.mutate(path, percent=50, seed=3)
    b = backup(driver, path)
    bucket = MemoryBackupDriver.shared_buckets["volumebackups"]
    one, two = f"{a.service_metadata}/d00000001", f"{a.service_metadata}/d00000002"
    bucket[one], bucket[two] = bucket[two], bucket[one]
    report = route(driver, a).verify(a, JobContext())
    assert sorted(n for n, _ in report.corrupt) == [one, two]
    assert all("authentication failed" in why for _, why in report.corrupt)
    out = tmp_path / "out.img"
    with pytest.raises(exceptions.IntegrityError) as err:
        restore(driver, a, str(out))
    assert a.id in str(err.value) and (one in str(err.value) or two in str(err.value))
    # The manifest of another backup of the same volume, under this backup's name: refused, not restored.
    bucket[f"{b.service_metadata}/manifest"] = bucket[f"{a.service_metadata}/manifest"]
    with pytest.raises(exceptions.IntegrityError) as err:
        restore(driver, b, str(tmp_path / "out2.img"))
    assert f"{b.service_metadata}/manifest" in str(err.value) and b.id in str(err.value)
    assert "\n" not in str(err.value)


def test_wrong_key_is_one_error_naming_the_key_object_and_restores_nothing(tmp_path: pathlib.Path,
                                                                            key_file: str) -> None:
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=4, run=MiB)
    info = backup(make_driver(key_file=key_file), path)
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    wrong = make_driver(key_file=str(other), clear=False)
    target = tmp_path / "target.img"
    target.write_bytes(b"precious" * 1000)
    with pytest.raises(exceptions.EncryptionKeyError) as err, \
            FileSource(wrong.conf).open_writer(str(target)) as writer:
        route(wrong, info).restore(info, writer, JobContext(), volume_is_new=False)
    msg = str(err.value)
    assert keys.KEY_PREFIX in msg and str(other) in msg and "wrong passphrase or key file" in msg
    assert err.value.exit_code == 77 and "\n" not in msg
    assert target.read_bytes() == b"precious" * 1000
    with pytest.raises(exceptions.EncryptionKeyError):
        route(wrong, info).verify(info, JobContext())


def test_passphrase_from_the_environment_and_a_change_rewrites_only_the_key_object(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(keys.PASSPHRASE_ENV, PASSPHRASE)
    driver = make_driver()
    path = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=5, run=MiB)
    info = backup(driver, path)
    before = raw_objects()
    [key_name] = [n for n in before if n.startswith(keys.KEY_PREFIX)]
    assert '"name": "scrypt"' in before[key_name].decode() and PASSPHRASE not in before[key_name].decode()
    store = driver.store
    assert isinstance(store, EncryptedObjectStore)
    new = keys.UserKey("passphrase", b"a new passphrase", "test")
    assert store.change_key("volumebackups", new) == [key_name]
    after = raw_objects()
    assert [n for n in after if after[n] != before[n]] == [key_name] and after.keys() == before.keys()
    with pytest.raises(exceptions.EncryptionKeyError):
        restore(make_driver(clear=False), info, str(tmp_path / "old.img"))
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "a new passphrase")
    assert restore(make_driver(clear=False), info, str(tmp_path / "new.img")) == volumes.sha256_file(path)


def test_no_key_bad_key_files_and_mixed_containers(tmp_path: pathlib.Path, key_file: str) -> None:
    path = volumes.write_mixed(str(tmp_path / "v.img"), 2 * MiB, seed=6, run=MiB)
    with pytest.raises(exceptions.EncryptionKeyError, match="no key: set encryption_key_file"):
        make_driver().check_for_setup_error()
    with pytest.raises(exceptions.EncryptionKeyError, match="no key: set encryption_key_file"):
        backup(make_driver(), path)
    make_driver(encryption="none").check_for_setup_error()
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 31)
    with pytest.raises(exceptions.EncryptionKeyError, match="holds 31 bytes"):
        backup(make_driver(key_file=str(short)), path)
    with pytest.raises(exceptions.EncryptionKeyError, match="cannot read key file"):
        backup(make_driver(key_file=str(tmp_path / "missing.key")), path)
    # Plain backups exist: turning encryption on does not mix encrypted objects in, nor read them unauthenticated.
    plain = backup(make_driver(encryption="none"), path)
    with pytest.raises(exceptions.EncryptionKeyError, match="holds objects but no key object"):
        backup(make_driver(key_file=key_file, clear=False), path)
    with pytest.raises(exceptions.EncryptionKeyError, match="holds objects but no key object"):
        restore(make_driver(key_file=key_file, clear=False), plain, str(tmp_path / "p.img"))
    # An encrypted container is read encrypted whatever `encryption` says for new containers.
    enc = backup(make_driver(key_file=key_file), path)
    with pytest.raises(exceptions.EncryptionKeyError, match="no key"):
        restore(make_driver(encryption="none", clear=False), enc, str(tmp_path / "e0.img"))
    reader = make_driver(encryption="none", key_file=key_file, clear=False)
    assert restore(reader, enc, str(tmp_path / "e1.img")) == volumes.sha256_file(path)


def test_two_writers_making_a_key_at_once_both_stay_readable(tmp_path: pathlib.Path, key_file: str) -> None:
    buckets: dict[str, dict[str, bytes]] = {}
    user = keys.user_key_from_conf(make_driver(key_file=key_file).conf)
    first = EncryptedObjectStore(MemoryObjectStore(buckets), cipher="aes-256-gcm", user_key=lambda: user)
    second = EncryptedObjectStore(MemoryObjectStore(buckets), cipher="aes-256-gcm", user_key=lambda: user)
    first.put_container("c")
    # The second writer saw no key object yet and made its own: simulate by clearing its view of the first's.
    saved = dict(buckets["c"])
    buckets["c"].clear()
    second.put_container("c")
    buckets["c"].update(saved)
    first.put_object("c", "a", b"from the first")
    second.put_object("c", "b", b"from the second")
    third = EncryptedObjectStore(MemoryObjectStore(buckets), cipher="aes-256-gcm", user_key=lambda: user)
    assert len([n for n in buckets["c"] if n.startswith(keys.KEY_PREFIX)]) == 2
    assert third.get_object("c", "a") == b"from the first"
    assert third.get_object("c", "b") == b"from the second"
    assert third.list_objects("c") == ["a", "b"]
    with pytest.raises(exceptions.InvalidInput):
        third.put_object("c", keys.KEY_PREFIX + "x", b"")


def test_secrets_stay_out_of_reprs_and_errors(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(keys.PASSPHRASE_ENV, PASSPHRASE)
    driver = make_driver()
    path = volumes.write_mixed(str(tmp_path / "v.img"), 2 * MiB, seed=7, run=MiB)
    info = backup(driver, path)
    user = keys.user_key_from_conf(driver.conf)
    assert PASSPHRASE not in repr(user) and PASSPHRASE not in str(driver.store.__dict__)
    monkeypatch.setenv(keys.PASSPHRASE_ENV, PASSPHRASE + "!")
    with pytest.raises(exceptions.EncryptionKeyError) as err:
        route(make_driver(clear=False), info).verify(info, JobContext())
    assert PASSPHRASE not in str(err.value) and f"${keys.PASSPHRASE_ENV}" in str(err.value)


class TestEncryptedMemoryDriverFaults(FaultContract):
    """Faults injected under the encryption wrapper: retried, reported, and never a wrong byte restored."""

    @pytest.fixture
    def driver(self, key_file: str) -> MemoryBackupDriver:
        return make_driver(key_file=key_file)


def test_a_tier1_drivers_store_is_encrypted_too(key_file: str) -> None:
    """The hook is the core's one wrapping of a driver's store (ashvault.wrappers.wrap), not the chunked base class."""

    class NativeWithStore(BackupDriver):
        name = "native-with-store"
        option_group = MemoryBackupDriver.option_group
        capabilities = Capabilities(native_sources=frozenset({"rbd"}), object_store=True)
        native_format = "native-with-store/1"

        def make_object_store(self) -> MemoryObjectStore:
            return MemoryObjectStore(MemoryBackupDriver.shared_buckets)

    conf = make_driver(key_file=key_file).conf
    driver = NativeWithStore(conf)
    assert not isinstance(driver, ChunkedBackupDriver) and isinstance(driver.store, EncryptedObjectStore)
    driver.store.put_container("c")
    driver.store.put_object("c", "x", b"plain text")
    stored = MemoryBackupDriver.shared_buckets["c"]["x"]
    assert stored.startswith(MAGIC) and b"plain text" not in stored
    assert driver.store.get_object("c", "x") == b"plain text"
