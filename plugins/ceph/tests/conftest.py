"""A real single-node Ceph cluster (mon, mgr, one memstore OSD, cephx) on 127.0.0.1 for the whole session.

Started by ``ci/cluster.py`` in a temporary directory and killed at the end. When it cannot start, the tests are
skipped, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

from ashvault.conf import make_config, register_group

HERE = pathlib.Path(__file__).resolve().parent
MiB = 1 << 20


def _cluster_module() -> Any:
    spec = importlib.util.spec_from_file_location("ashvault_ceph_ci_cluster", HERE.parent / "ci" / "cluster.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cluster_mod = _cluster_module()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Ceph test cluster unavailable under CI: {reason}")
    pytest.skip(f"Ceph test cluster unavailable: {reason}")


def start_cluster(directory: pathlib.Path, **kwargs: Any) -> Any:
    missing = [b for b in ("ceph-mon", "ceph-osd", "ceph-mgr", "ceph-authtool", "monmaptool")
               if shutil.which(b) is None]
    if missing:
        _unavailable(f"{', '.join(missing)} not installed (run plugins/ceph/ci/install.sh)")
    try:
        import rados  # noqa: F401
        import rbd  # noqa: F401
    except ImportError as exc:
        _unavailable(f"{exc} (run plugins/ceph/ci/install.sh)")
    cluster = cluster_mod.Cluster(str(directory), **kwargs)
    try:
        cluster.start()
    except (cluster_mod.ClusterError, OSError) as exc:
        cluster.stop()
        _unavailable(str(exc))
    return cluster


@pytest.fixture(scope="session")
def ceph_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    cluster = start_cluster(tmp_path_factory.mktemp("ceph") / "cluster")
    try:
        yield cluster
    finally:
        cluster.stop()


def ceph_config(cluster: Any, state: pathlib.Path, *, user: str = "admin", **backup_ceph: Any) -> cfg.ConfigOpts:
    """A configuration whose ceph driver and rbd source reach ``cluster`` as ``user``."""
    from ashvault_ceph import opts

    conf = make_config([], config_files=[])
    conf.set_override("ashvault_state_path", str(state))
    register_group(conf, opts.GROUP, opts.ceph_opts)
    register_group(conf, opts.SOURCE_GROUP, opts.rbd_opts)
    conf.set_override("conf", cluster.conf, group=opts.GROUP)
    conf.set_override("user", user, group=opts.GROUP)
    conf.set_override("connect_timeout", 10, group=opts.GROUP)
    conf.set_override("object_size", 1 * MiB, group=opts.GROUP)
    conf.set_override("ceph_conf", cluster.conf, group=opts.SOURCE_GROUP)
    conf.set_override("user", user, group=opts.SOURCE_GROUP)
    conf.set_override("connect_timeout", 10, group=opts.SOURCE_GROUP)
    for key, value in backup_ceph.items():
        conf.set_override(key, value, group=opts.GROUP)
    return conf


@pytest.fixture
def conf(ceph_cluster: Any, tmp_path: pathlib.Path) -> cfg.ConfigOpts:
    return ceph_config(ceph_cluster, tmp_path / "state")


@pytest.fixture
def admin(ceph_cluster: Any) -> Iterator[Any]:
    """An admin ``Connection`` to the test cluster."""
    from ashvault_ceph.client import Connection

    conn = Connection(ceph_cluster.conf, "admin", connect_timeout=10)
    yield conn
    conn.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class RbdTool:
    """Test-side access to RBD images (as admin): make them, fill them from files, read them back."""

    BLOCK = 64 * 1024

    def __init__(self, conn: Any) -> None:
        import rbd

        self.rbd = rbd
        self.conn = conn

    def create(self, pool: str, name: str, size: int) -> str:
        from ashvault_ceph.rbd_source import IMAGE_FEATURES

        self.rbd.RBD().create(self.conn.ioctx(pool), name, size, old_format=False, features=IMAGE_FEATURES)
        return f"rbd:{pool}/{name}"

    def image(self, pool: str, name: str, snapshot: str | None = None) -> Any:
        return self.rbd.Image(self.conn.ioctx(pool), name, snapshot=snapshot, read_only=snapshot is not None)

    def sync_from_file(self, path: str, pool: str, name: str) -> int:
        """Make the image equal the file, writing only the blocks that differ; returns the bytes written."""
        size = os.path.getsize(path)
        names = self.rbd.RBD().list(self.conn.ioctx(pool))
        if name not in names:
            self.create(pool, name, size)
        written = 0
        with open(path, "rb") as f, self.image(pool, name) as img:
            if img.size() != size:
                img.resize(size)
            for off in range(0, size, self.BLOCK):
                want = f.read(self.BLOCK)
                if img.read(off, len(want)) != want:
                    img.write(want, off)
                    written += len(want)
        return written

    def write(self, pool: str, name: str, offset: int, data: bytes) -> None:
        with self.image(pool, name) as img:
            img.write(data, offset)

    def to_file(self, pool: str, name: str, path: str, snapshot: str | None = None) -> str:
        """Copy the image into a sparse file (zero blocks left as holes); returns the file's path."""
        with self.image(pool, name, snapshot) as img, open(path, "wb") as f:
            size = img.size()
            f.truncate(size)
            for off in range(0, size, 4 * MiB):
                data = img.read(off, min(4 * MiB, size - off))
                for b in range(0, len(data), self.BLOCK):
                    block = data[b : b + self.BLOCK]
                    if block.count(0) != len(block):
                        f.seek(off + b)
                        f.write(block)
        return path

    def sha(self, pool: str, name: str, snapshot: str | None = None) -> str:
        import hashlib

        h = hashlib.sha256()
        with self.image(pool, name, snapshot) as img:
            size = img.size()
            for off in range(0, size, 4 * MiB):
                h.update(img.read(off, min(4 * MiB, size - off)))
        return h.hexdigest()

    def snaps(self, pool: str, name: str) -> list[str]:
        with self.image(pool, name) as img:
            return [s["name"] for s in img.list_snaps()]

    def images(self, pool: str, prefix: str = "") -> list[str]:
        return sorted(n for n in self.rbd.RBD().list(self.conn.ioctx(pool)) if n.startswith(prefix))


@pytest.fixture
def rbdtool(admin: Any) -> RbdTool:
    return RbdTool(admin)


@pytest.fixture
def cephkit() -> Any:
    """The helpers above, for test modules (they cannot import conftest): config, start, RbdTool."""
    import types

    return types.SimpleNamespace(config=ceph_config, start=start_cluster, RbdTool=RbdTool)
