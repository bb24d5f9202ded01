"""A real GlusterFS volume and a real NFS server (nfs-ganesha) on 127.0.0.1 for the session.

Both are started and stopped by ``ci/servers.py``, by PID. GlusterFS is mounted by the driver through the real
``mount -t glusterfs``; the NFS share through the userspace NFSv3 client ``ci/nfs_fuse.py`` as ``mount_command``
(this kernel has no NFS client). When a server cannot start the tests are skipped, except under ``CI=true``,
where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from ashvault.conf import make_config, register_group
from ashvault_posix.glusterfs import GlusterfsBackupDriver
from ashvault_posix.mount import MountedBackupDriver
from ashvault_posix.nfs import NFSBackupDriver

HERE = pathlib.Path(__file__).resolve().parent


def _load_servers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ashvault_posix_ci_servers", HERE.parent / "ci" / "servers.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


servers = _load_servers()


def _start(server: Any, what: str) -> None:
    try:
        server.up()
    except (RuntimeError, OSError) as exc:
        server.down(remove=False)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} did not start: {exc}")
        pytest.skip(f"{what} did not start (run plugins/posix_nfs_gluster/ci/install.sh): {exc}")


class Mounts:
    """Mount-point bases handed to tests; whatever got mounted under them is unmounted at the end."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.bases: list[str] = []

    def base(self, name: str | None = None) -> str:
        path = str(self.root / (name or uuid.uuid4().hex[:8]))
        self.bases.append(path)
        return path

    def unmount_all(self) -> None:
        unmount_under(str(self.root))


@pytest.fixture(scope="session")
def mounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    m = Mounts(tmp_path_factory.mktemp("mounts"))
    yield m
    m.unmount_all()


@pytest.fixture(scope="session")
def gluster(tmp_path_factory: pytest.TempPathFactory, mounts: Mounts) -> Iterator[Any]:
    """glusterd with volume ``vol`` (share ``gluster.share``)."""
    g = servers.Gluster(str(tmp_path_factory.mktemp("gluster")))
    _start(g, "GlusterFS")
    g.share = "127.0.0.1:/vol"
    yield g
    mounts.unmount_all()
    g.down()


@pytest.fixture(scope="session")
def ganesha(tmp_path_factory: pytest.TempPathFactory, mounts: Mounts) -> Iterator[Any]:
    """nfs-ganesha exporting ``ganesha.share`` read-write and ``ganesha.ro_share`` read-only."""
    n = servers.Ganesha(str(tmp_path_factory.mktemp("ganesha")))
    _start(n, "nfs-ganesha")
    yield n
    mounts.unmount_all()
    n.down()


def unmount_under(directory: str) -> None:
    """Unmount every mount below ``directory`` (mount points a test made, whatever happened to the test)."""
    prefix = os.path.realpath(directory) + os.sep
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in reversed(points):
        if point.startswith(prefix):
            servers.umount(point)


@pytest.fixture
def mount_base(tmp_path: pathlib.Path) -> Iterator[str]:
    """A mount-point base of the test's own; whatever got mounted below ``tmp_path`` is unmounted afterwards."""
    yield str(tmp_path / "mnt")
    unmount_under(str(tmp_path))


@pytest.fixture(scope="session")
def shared_base(mounts: Mounts) -> str:
    """One mount-point base for the session, so tests reuse a mount as the driver does."""
    return mounts.base("shared")


def driver_values(kind: str, server: Any, base: str) -> dict[str, Any]:
    """The options of the ``kind`` driver for ``server``: 1 MiB objects, a fresh container, short retries."""
    values: dict[str, Any] = {"share": server.share, "mount_point_base": base, "object_size": 1 << 20,
                              "container": f"c-{uuid.uuid4().hex[:12]}", "retry_backoff": 0.2,
                              "retry_attempts": 3, "mount_retry_backoff": 0.2}
    if kind == "nfs":
        values.update(mount_command=server.mount_command(), mount_options=server.mount_options)
    return values


@pytest.fixture
def make_driver(tmp_path: pathlib.Path, shared_base: str,
                request: pytest.FixtureRequest) -> Iterator[Callable[..., MountedBackupDriver]]:
    """Makes an nfs or glusterfs driver on the session's mount base (starts the server it needs)."""
    made: list[MountedBackupDriver] = []

    def make(kind: str, **overrides: Any) -> MountedBackupDriver:
        cls = {"nfs": NFSBackupDriver, "glusterfs": GlusterfsBackupDriver}[kind]
        server = request.getfixturevalue("ganesha" if kind == "nfs" else "gluster")
        conf = make_config([], config_files=[])
        conf.set_override("ashvault_state_path", str(tmp_path / "state"))
        register_group(conf, cls.option_group, cls.get_driver_options())
        for name, value in {**driver_values(kind, server, shared_base), **overrides}.items():
            conf.set_override(name, value, group=cls.option_group)
        driver = cls(conf)
        made.append(driver)
        return driver

    yield make
    for d in made:
        d.close()
