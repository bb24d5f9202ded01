"""In-memory stand-ins for tests: an object store, a driver over it, and a store that fails on demand."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import ClassVar

from oslo_config import cfg

from ashvault import conf as conf_mod
from ashvault import exceptions
from ashvault.chunked import ChunkedBackupDriver
from ashvault.objectstore import ObjectStore, ObjectStoreWrapper, check_name


class MemoryObjectStore(ObjectStore):
    """Objects in a dict. Shared between instances through ``buckets`` when one is passed."""

    def __init__(self, buckets: dict[str, dict[str, bytes]] | None = None, *, create_containers: bool = True) -> None:
        self.buckets = {} if buckets is None else buckets
        self.create_containers = create_containers
        self._lock = threading.Lock()

    def put_container(self, container: str) -> None:
        check_name(container, what="container name")
        with self._lock:
            if container not in self.buckets:
                if not self.create_containers:
                    raise exceptions.ContainerNotFound(container=container)
                self.buckets[container] = {}

    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(n for n in self.buckets.get(container, {}) if n.startswith(prefix))

    def put_object(self, container: str, name: str, data: bytes) -> None:
        check_name(name)
        with self._lock:
            if container not in self.buckets:
                raise exceptions.ContainerNotFound(container=container)
            self.buckets[container][name] = bytes(data)

    def get_object(self, container: str, name: str) -> bytes:
        with self._lock:
            try:
                return self.buckets[container][name]
            except KeyError:
                raise exceptions.ObjectNotFound(name=name, container=container) from None

    def delete_object(self, container: str, name: str) -> None:
        with self._lock:
            try:
                del self.buckets[container][name]
            except KeyError:
                raise exceptions.ObjectNotFound(name=name, container=container) from None


class MemoryBackupDriver(ChunkedBackupDriver):
    """The chunked engine over a :class:`MemoryObjectStore`; for tests, never offered to users."""

    name = "memory"
    option_group = "backup_memory"
    shared_buckets: ClassVar[dict[str, dict[str, bytes]]] = {}

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return conf_mod.chunked_driver_opts(cinder={}, object_size=1 << 20, block_size=16 * 1024)

    def make_object_store(self) -> ObjectStore:
        return MemoryObjectStore(self.shared_buckets, create_containers=self.conf.backup_create_containers)


class FaultyObjectStore(ObjectStoreWrapper):
    """Raises the error ``fault(method, name)`` returns (if any) before passing a call on."""

    def __init__(self, inner: ObjectStore, fault: Callable[[str, str], BaseException | None]) -> None:
        super().__init__(inner)
        self.fault = fault
        self.calls: list[tuple[str, str]] = []

    def _maybe(self, method: str, name: str) -> None:
        self.calls.append((method, name))
        err = self.fault(method, name)
        if err is not None:
            raise err

    def put_object(self, container: str, name: str, data: bytes) -> None:
        self._maybe("put_object", name)
        self.inner.put_object(container, name, data)

    def get_object(self, container: str, name: str) -> bytes | memoryview:
        self._maybe("get_object", name)
        return self.inner.get_object(container, name)

    def delete_object(self, container: str, name: str) -> None:
        self._maybe("delete_object", name)
        self.inner.delete_object(container, name)

    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        self._maybe("list_objects", prefix)
        return self.inner.list_objects(container, prefix)
