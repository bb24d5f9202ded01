"""Encryption at rest: every object of an encrypted container sealed with an AEAD, its name bound in.

A container is encrypted when it holds a key object (:mod:`ashvault.keys`); the ``encryption`` option only decides
whether a new, empty container gets one. Each object is stored as::

    b"AVE" 0x01 | key id (8 bytes) | nonce (12 bytes) | ciphertext | tag (16 bytes)

with the first 12 bytes and the object's name as associated data, so an object renamed, swapped with another or
moved between containers (which have different data keys) fails authentication. See FORMAT.md, *Encryption*.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from oslo_config import cfg

from ashvault import exceptions, keys
from ashvault.directio import BufferPool
from ashvault.objectstore import ObjectStore, ObjectStoreWrapper

LOG = logging.getLogger(__name__)

MAGIC = b"AVE\x01"
BOUND_BYTES = len(MAGIC) + keys.KEY_ID_BYTES
"""The header bytes before the nonce, authenticated with the object's name."""
HEADER_BYTES = BOUND_BYTES + keys.NONCE_BYTES
TAG_BYTES = 16
OVERHEAD = HEADER_BYTES + TAG_BYTES
_BUFFERS = BufferPool(keep=16)


class ContainerKeys:
    """The data keys of one encrypted container; new objects use the one with the smallest id."""

    def __init__(self, container: str, found: dict[bytes, keys.DataKey]) -> None:
        self.container = container
        self.by_id = found
        self.current = found[min(found)]

    def seal(self, name: str, data: bytes | memoryview, *, into_buffer: bool = False) -> bytes | memoryview:
        """The stored form of ``data``: ``bytes``, or with ``into_buffer`` a pooled page-aligned buffer, which a
        store taking buffers writes with ``O_DIRECT`` and no copy of its own."""
        key = self.current
        head = MAGIC + key.key_id + secrets.token_bytes(keys.NONCE_BYTES)
        nonce, aad = head[BOUND_BYTES:], head[:BOUND_BYTES] + name.encode()
        if not into_buffer or not hasattr(key.aead, "encrypt_into"):  # encrypt_into: cryptography 45 and later
            return head + key.aead.encrypt(nonce, data, aad)
        out = _BUFFERS.get(HEADER_BYTES + len(data) + TAG_BYTES)
        out[:HEADER_BYTES] = head
        key.aead.encrypt_into(nonce, data, aad, out[HEADER_BYTES:])
        return out

    def open(self, name: str, raw: bytes | memoryview) -> bytes | memoryview:
        """The object's plain bytes, in a pooled buffer (no fresh memory for the kernel to zero per object)."""
        def bad(reason: str) -> exceptions.ObjectAuthenticationFailed:
            return exceptions.ObjectAuthenticationFailed(object=name, container=self.container, reason=reason)

        view = memoryview(raw)
        if len(view) < OVERHEAD or view[: len(MAGIC)] != MAGIC:
            raise bad("not an encrypted object (too short or no header)")
        key_id = bytes(view[len(MAGIC) : BOUND_BYTES])
        key = self.by_id.get(key_id)
        if key is None:
            raise bad(f"sealed with key {key_id.hex()}, which has no readable key object in the container")
        nonce, aad = view[BOUND_BYTES:HEADER_BYTES], bytes(view[:BOUND_BYTES]) + name.encode()
        try:
            if not hasattr(key.aead, "decrypt_into"):  # cryptography 45 and later
                return key.aead.decrypt(nonce, view[HEADER_BYTES:], aad)
            out = _BUFFERS.get(len(view) - OVERHEAD)
            key.aead.decrypt_into(nonce, view[HEADER_BYTES:], aad, out)
            return out
        except InvalidTag:
            raise bad("authentication failed: the object was altered, truncated or swapped") from None


class EncryptedObjectStore(ObjectStoreWrapper):
    """Encrypts and authenticates every object of encrypted containers; passes plain containers through.

    ``cipher`` (``aes-256-gcm``, ``chacha20-poly1305``) makes new, empty containers encrypted; ``None`` leaves them
    plain. With a cipher set, a container that holds objects but no key object is refused rather than read or
    written in the clear. ``user_key`` is called once, when a key object is first needed.
    """

    accepts_buffers = True  # type: ignore[assignment]

    def __init__(self, inner: ObjectStore, *, cipher: str | None, user_key: Callable[[], keys.UserKey],
                 scrypt_n: int = keys.SCRYPT_N) -> None:
        super().__init__(inner)
        self.cipher = cipher
        self._user_key_source = user_key
        self._user_key: keys.UserKey | None = None
        self._scrypt_n = scrypt_n
        self._lock = threading.Lock()
        self._containers: dict[str, ContainerKeys | None] = {}

    def _user(self) -> keys.UserKey:
        if self._user_key is None:
            self._user_key = self._user_key_source()
        return self._user_key

    def _load(self, container: str, names: list[str]) -> ContainerKeys:
        found: dict[bytes, keys.DataKey] = {}
        wrong: list[exceptions.EncryptionKeyError] = []
        for name in names:
            try:
                key = keys.unwrap(self.inner.get_object(container, name), name, container, self._user())
            except exceptions.EncryptionKeyError as exc:
                wrong.append(exc)
                continue
            found[key.key_id] = key
        if not found:
            raise wrong[0]
        for exc in wrong:
            LOG.warning("%s", exc)
        return ContainerKeys(container, found)

    def _keys(self, container: str, *, create: bool) -> ContainerKeys | None:
        with self._lock:
            if container in self._containers:
                return self._containers[container]
            names = self.inner.list_objects(container, keys.KEY_PREFIX)
            if not names:
                if self.cipher is None:
                    self._containers[container] = None
                    return None
                if self.inner.list_objects(container):
                    raise exceptions.EncryptionKeyError(
                        reason=f"container '{container}' holds objects but no key object ({keys.KEY_PREFIX}...) and "
                        "encryption is on: its backups are unencrypted (use another container, or set encryption = "
                        "none to read them), or its key object was removed"
                    )
                if not create:
                    return None
                name, raw = keys.new_key(self.cipher, self._user(), scrypt_n=self._scrypt_n)
                self.inner.put_object(container, name, raw)
                LOG.info("container '%s' is now encrypted with %s (key object %s)", container, self.cipher, name)
                # Two processes may each have made a key for a new container: both stay readable, the smallest is used.
                names = self.inner.list_objects(container, keys.KEY_PREFIX)
            found = self._load(container, names)
            self._containers[container] = found
            return found

    def encrypted(self, container: str) -> bool:
        """Whether ``container`` holds a key object (raises when it does and the key does not open it)."""
        return self._keys(container, create=False) is not None

    def check(self) -> None:
        """Also that a key is given when encryption is on (a missing key file fails here, before any job)."""
        self.inner.check()
        if self.cipher is not None:
            self._user()

    def put_container(self, container: str) -> None:
        self.inner.put_container(container)
        self._keys(container, create=True)

    def list_objects(self, container: str, prefix: str = "") -> list[str]:
        return [n for n in self.inner.list_objects(container, prefix) if not n.startswith(keys.KEY_PREFIX)]

    def object_sizes(self, container: str, prefix: str = "") -> dict[str, int] | None:
        """Sizes as the caller wrote them: an encrypted object's header and tag are not counted."""
        sizes = self.inner.object_sizes(container, prefix)
        if sizes is None:
            return None
        less = OVERHEAD if self._keys(container, create=False) is not None else 0
        return {n: size - less for n, size in sizes.items() if not n.startswith(keys.KEY_PREFIX)}

    def put_object(self, container: str, name: str, data: bytes) -> None:
        if name.startswith(keys.KEY_PREFIX):
            raise exceptions.InvalidInput(reason=f"object name '{name}' is reserved for encryption keys")
        found = self._keys(container, create=True)
        if found is None:
            self.inner.put_object(container, name, bytes(data) if not self.inner.accepts_buffers else data)
        else:
            self.inner.put_object(container, name, found.seal(name, data, into_buffer=self.inner.accepts_buffers))

    def get_object(self, container: str, name: str) -> bytes | memoryview:
        found = self._keys(container, create=False)
        raw = self.inner.get_object(container, name)
        return raw if found is None else found.open(name, raw)

    def change_key(self, container: str, new: keys.UserKey) -> list[str]:
        """Wrap the container's data keys with ``new`` instead of the current user key; returns the objects rewritten.

        Only the key objects change: the backups stay as they are.
        """
        names = self.inner.list_objects(container, keys.KEY_PREFIX)
        if not names:
            raise exceptions.EncryptionKeyError(reason=f"container '{container}' is not encrypted")
        rewritten = []
        for name in names:
            doc, material = keys.unwrap_material(self.inner.get_object(container, name), name, container,
                                                 self._user())
            raw = keys.wrap(bytes.fromhex(doc["key_id"]), material, doc["cipher"], new, scrypt_n=self._scrypt_n)
            self.inner.put_object(container, name, raw)
            rewritten.append(name)
        with self._lock:
            self._user_key = new
            self._containers.pop(container, None)
        return rewritten


def for_config(inner: ObjectStore, conf: cfg.ConfigOpts) -> EncryptedObjectStore:
    """The wrapper :func:`ashvault.wrappers.wrap` puts around every store a driver offers, from ``encryption`` and
    ``encryption_key_file``."""
    cipher = None if conf.encryption == "none" else conf.encryption
    return EncryptedObjectStore(inner, cipher=cipher, user_key=lambda: keys.user_key_from_conf(conf),
                                scrypt_n=keys.SCRYPT_N)
