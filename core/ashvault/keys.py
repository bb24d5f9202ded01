"""Encryption keys: the user's key, and the data keys a container keeps wrapped by it (FORMAT.md, *Encryption*).

A container that is encrypted holds one or more *key objects* ``ashvault-keys/<key id>``. Each holds a random 256-bit
data key, encrypted and authenticated with a key-encryption key (KEK) derived from what the user holds: a key file
(HKDF-SHA256 over its content) or a passphrase (scrypt). Changing the passphrase or key file rewrites only these
small objects. Objects of the container are encrypted with a data key (see :mod:`ashvault.wrappers.encryption`).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import os
import secrets
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from oslo_config import cfg

from ashvault import exceptions

KEY_PREFIX = "ashvault-keys/"
KEY_FORMAT = "ashvault-key"
KEY_VERSION = 1
PASSPHRASE_ENV = "ASHVAULT_PASSPHRASE"
MIN_KEY_FILE_BYTES = 32
SCRYPT_N = 1 << 17
"""scrypt cost: 2**17 with r=8 takes 128 MiB of memory and 0.55 CPU s here, once per key object and process."""

AEAD = AESGCM | ChaCha20Poly1305
CIPHERS: dict[str, Callable[[bytes], AEAD]] = {"aes-256-gcm": AESGCM, "chacha20-poly1305": ChaCha20Poly1305}
NONCE_BYTES = 12
KEY_ID_BYTES = 8


@dataclasses.dataclass(frozen=True, repr=False)
class UserKey:
    """What the user holds: the content of a key file, or a passphrase."""

    kind: str
    """``key-file`` or ``passphrase``, as named in a key object's ``kdf``."""
    secret: bytes
    source: str
    """Where it came from, for messages: never the secret itself."""

    def __repr__(self) -> str:
        return f"UserKey({self.kind} from {self.source})"


_typed_passphrase: str | None = None


def remember_passphrase(passphrase: str) -> None:
    """Keep a passphrase typed at the interactive shell's prompt for this process (never written anywhere)."""
    global _typed_passphrase
    _typed_passphrase = passphrase


def typed_passphrase() -> str | None:
    """The passphrase :func:`remember_passphrase` kept, if any."""
    return _typed_passphrase


def user_key_from_conf(conf: cfg.ConfigOpts) -> UserKey:
    """The key file named by ``encryption_key_file``, else ``$ASHVAULT_PASSPHRASE``, else the typed passphrase."""
    path = conf.encryption_key_file
    if path:
        try:
            with open(path, "rb") as f:
                secret = f.read(1 << 16)
        except OSError as exc:
            raise exceptions.EncryptionKeyError(reason=f"cannot read key file {path}: {exc.strerror}") from None
        if len(secret) < MIN_KEY_FILE_BYTES:
            raise exceptions.EncryptionKeyError(
                reason=f"key file {path} holds {len(secret)} bytes; it needs at least {MIN_KEY_FILE_BYTES} "
                f"(make one with: head -c 32 /dev/urandom > {path})"
            )
        return UserKey("key-file", secret, f"key file {path}")
    passphrase = os.environ.get(PASSPHRASE_ENV)
    source = f"${PASSPHRASE_ENV}"
    if passphrase is None and _typed_passphrase is not None:
        passphrase, source = _typed_passphrase, "the passphrase typed at the prompt"
    if not passphrase:
        raise exceptions.EncryptionKeyError(
            reason=f"no key: set encryption_key_file, or the passphrase in ${PASSPHRASE_ENV} (the interactive shell "
            "asks for it)"
        )
    return UserKey("passphrase", passphrase.encode(), source)


@functools.lru_cache(maxsize=32)
def _scrypt(secret: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(secret)


def _kek(user: UserKey, kdf: dict[str, Any]) -> bytes:
    salt = bytes.fromhex(kdf["salt"])
    if kdf["name"] == "scrypt":
        # Cached, so each process pays for the memory-hard derivation once per key object.
        return _scrypt(user.secret, salt, int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
    if kdf["name"] == "hkdf-sha256":
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"ashvault key-file kek").derive(user.secret)
    raise ValueError(f"unknown kdf {kdf['name']!r}")


def _kdf_for(user: UserKey, scrypt_n: int) -> dict[str, Any]:
    salt = secrets.token_bytes(16).hex()
    if user.kind == "passphrase":
        return {"name": "scrypt", "salt": salt, "n": scrypt_n, "r": 8, "p": 1}
    return {"name": "hkdf-sha256", "salt": salt}


def _aad(doc: dict[str, Any]) -> bytes:
    header = {k: v for k, v in doc.items() if k != "wrapped"}
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


@dataclasses.dataclass(frozen=True, repr=False)
class DataKey:
    """One container's data key, unwrapped."""

    key_id: bytes
    cipher: str
    aead: AEAD

    def __repr__(self) -> str:
        return f"DataKey({self.key_id.hex()}, {self.cipher})"


def key_object_name(key_id: bytes) -> str:
    return KEY_PREFIX + key_id.hex()


def wrap(key_id: bytes, material: bytes, cipher: str, user: UserKey, *, scrypt_n: int = SCRYPT_N) -> bytes:
    """The content of a key object holding ``material`` wrapped by ``user``'s key."""
    doc: dict[str, Any] = {
        "format": KEY_FORMAT,
        "version": KEY_VERSION,
        "key_id": key_id.hex(),
        "cipher": cipher,
        "kdf": _kdf_for(user, scrypt_n),
    }
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = CIPHERS[cipher](_kek(user, doc["kdf"])).encrypt(nonce, material, _aad(doc))
    doc["wrapped"] = base64.b64encode(nonce + sealed).decode()
    return json.dumps(doc, indent=1).encode() + b"\n"


def new_key(cipher: str, user: UserKey, *, scrypt_n: int = SCRYPT_N) -> tuple[str, bytes]:
    """A fresh data key: the name and content of its key object."""
    if cipher not in CIPHERS:
        raise exceptions.ConfigurationError(reason=f"unknown cipher {cipher!r}")
    key_id = secrets.token_bytes(KEY_ID_BYTES)
    return key_object_name(key_id), wrap(key_id, secrets.token_bytes(32), cipher, user, scrypt_n=scrypt_n)


def _parse(raw: bytes | memoryview, name: str, container: str) -> dict[str, Any]:
    try:
        doc = json.loads(bytes(raw))
        if doc["format"] != KEY_FORMAT or doc["version"] != KEY_VERSION:
            raise ValueError(f"not a version {KEY_VERSION} key object")
        if doc["cipher"] not in CIPHERS or name != key_object_name(bytes.fromhex(doc["key_id"])):
            raise ValueError("unknown cipher, or key id and name differ")
        kdf = doc["kdf"]
        if not isinstance(kdf, dict) or not isinstance(doc["wrapped"], str):
            raise ValueError("kdf or wrapped key missing")
        if kdf.get("name") == "scrypt" and not (int(kdf["n"]) <= 1 << 20 and int(kdf["r"]) <= 32
                                                and int(kdf["p"]) <= 16):
            raise ValueError("scrypt parameters out of range")
        return doc  # type: ignore[no-any-return]
    except (ValueError, KeyError, TypeError) as exc:
        # Not an IntegrityError: the engine would pin it on the object it was reading, not on the key object.
        raise exceptions.EncryptionKeyError(
            reason=f"key object {name} of container '{container}' is unreadable: {exc}"
        ) from None


def unwrap_material(raw: bytes | memoryview, name: str, container: str, user: UserKey) -> tuple[dict[str, Any], bytes]:
    """The key object's fields and its data key. Raises ``EncryptionKeyError`` for a wrong key."""
    doc = _parse(raw, name, container)
    wanted = "passphrase" if doc["kdf"].get("name") == "scrypt" else "key-file"
    if wanted != user.kind:
        hint = "encryption_key_file" if wanted == "key-file" else f"${PASSPHRASE_ENV}"
        raise exceptions.EncryptionKeyError(
            reason=f"key object {name} of container '{container}' is wrapped by a {wanted}, not a {user.kind}: "
            f"set {hint}"
        )
    try:
        blob = base64.b64decode(doc["wrapped"], validate=True)
        kek = _kek(user, doc["kdf"])
        material = CIPHERS[doc["cipher"]](kek).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(doc))
    except (InvalidTag, ValueError, KeyError, TypeError):
        raise exceptions.EncryptionKeyError(
            reason=f"the {user.source} does not open key object {name} of container '{container}' (wrong "
            "passphrase or key file, or the key object was altered)"
        ) from None
    if len(material) != 32:
        raise exceptions.EncryptionKeyError(reason=f"key object {name} of container '{container}' holds a data key of "
                                            "the wrong size")
    return doc, material


def unwrap(raw: bytes | memoryview, name: str, container: str, user: UserKey) -> DataKey:
    doc, material = unwrap_material(raw, name, container, user)
    return DataKey(bytes.fromhex(doc["key_id"]), doc["cipher"], CIPHERS[doc["cipher"]](material))

