"""RadosObjectStore: containers are pools (as Cinder's ceph driver has it), objects are RADOS objects.

Objects live in one RADOS namespace of the pool (``[backup_ceph] namespace``), apart from RBD images, so listing a
backup's objects never walks the images' data objects. ``write_full`` replaces an object atomically, which is what
:meth:`~ashvault.objectstore.ObjectStore.put_object` promises.
"""

from __future__ import annotations

from typing import Any

from ashvault import exceptions
from ashvault.objectstore import ObjectStore, check_name
from ashvault_ceph.client import Connection, rados, translate

_READ = 16 << 20


class RadosObjectStore(ObjectStore):
    """Objects in ``namespace`` of each container's pool, through ``conn``.

    A missing pool is created by :meth:`put_container` when ``create_containers`` is set (that needs a user allowed
    to create pools); otherwise, and for a user without that right, it is ``ContainerNotFound`` /
    ``PermissionDenied``.
    """

    def __init__(self, conn: Connection, *, namespace: str = "ashvault", create_containers: bool = True) -> None:
        self.conn = conn
        self.namespace = namespace
        self.create_containers = create_containers

    def _io(self, container: str) -> Any:
        return self.conn.ioctx(check_name(container, what="container name"), self.namespace)

    def put_container(self, container: str) -> None:
        check_name(container, what="container name")
        if self.conn.pool_exists(container):
            return
        if not self.create_containers:
            raise exceptions.ContainerNotFound(container=container)
        try:
            self.conn.cluster.create_pool(container)
        except rados.ObjectExists:
            return
        except rados.Error as exc:
            raise translate(exc, f"creating pool {container}") from exc
        try:
            self.conn.ioctx(container).application_enable("rbd")
        except rados.Error as exc:
            raise translate(exc, f"tagging pool {container} for rbd") from exc

    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        check_name(container, what="container name")
        if not self.conn.pool_exists(container):
            return []
        try:
            names = [o.key for o in self._io(container).list_objects()]
        except rados.Error as exc:
            raise translate(exc, f"listing pool {container}") from exc
        return sorted(n for n in names if n.startswith(prefix))

    def put_object(self, container: str, name: str, data: bytes) -> None:
        io = self._io(container)
        check_name(name)
        try:
            io.write_full(name, bytes(data))
        except rados.Error as exc:
            raise translate(exc, f"writing {container}/{name}") from exc

    def get_object(self, container: str, name: str) -> bytes:
        io = self._io(container)
        check_name(name)
        try:
            size, _mtime = io.stat(name)
            parts = []
            off = 0
            while off < size:
                chunk = io.read(name, min(_READ, size - off), off)
                if not chunk:
                    raise exceptions.TransientDriverError(reason=f"{container}/{name} shrank while being read")
                parts.append(chunk)
                off += len(chunk)
        except rados.ObjectNotFound:
            raise exceptions.ObjectNotFound(name=name, container=container) from None
        except rados.Error as exc:
            raise translate(exc, f"reading {container}/{name}") from exc
        return b"".join(parts)

    def delete_object(self, container: str, name: str) -> None:
        io = self._io(container)
        check_name(name)
        try:
            io.remove_object(name)
        except rados.ObjectNotFound:
            raise exceptions.ObjectNotFound(name=name, container=container) from None
        except rados.Error as exc:
            raise translate(exc, f"deleting {container}/{name}") from exc

    def check(self) -> None:
        try:
            self.conn.cluster  # noqa: B018 - connecting is the check
        except exceptions.DriverSetupError:
            raise
        except exceptions.DriverError as exc:
            raise exceptions.DriverSetupError(reason=str(exc)) from exc

    def close(self) -> None:
        self.conn.close()
