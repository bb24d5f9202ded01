"""Compressors, found under the ``ashvault.compressors`` entry points.

Each object records the algorithm actually used, so restore picks the decompressor per object and a chain may mix
algorithms. Compressors are used from several threads at once: one that keeps state must keep it per thread
(``zstandard``'s compressor objects are not thread-safe).
"""

from __future__ import annotations

import abc
import bz2
import threading
import zlib
from typing import ClassVar

from ashvault import exceptions

ALIASES = {"off": "none", "no": "none", "gzip": "zlib", "bzip2": "bz2"}


def canonical_name(name: str) -> str:
    name = (name or "none").strip().lower()
    return ALIASES.get(name, name)


class Compressor(abc.ABC):
    name: ClassVar[str]
    default_level: ClassVar[int | None] = None
    probe: ClassVar[int] = 16 << 10
    """Bytes per sample that :meth:`worth_compressing` compresses; four samples are taken."""

    def __init__(self, level: int | None = None) -> None:
        self.level = self.default_level if level is None else level

    def worth_compressing(self, data: bytes | memoryview) -> bool:
        """Whether ``data`` looks compressible, judged from four evenly spaced samples.

        Random or already compressed data then costs a small fraction of compressing it. Data that fails the probe
        is stored as it is, which is never wrong, only larger.
        """
        view = memoryview(data).cast("B")
        if len(view) < 16 * self.probe:
            return True
        step = len(view) // 4
        sample = b"".join(view[i * step : i * step + self.probe] for i in range(4))
        return len(self.compress(sample)) < len(sample) - len(sample) // 32

    def pack(self, data: bytes | memoryview) -> bytes | None:
        """What an object holding ``data`` stores compressed, or ``None`` to store it as it is: when the probe
        says it is not worth it, or when compression saves no more than a 64th."""
        if self.name == "none" or not self.worth_compressing(data):
            return None
        packed = self.compress(data)
        return packed if len(packed) < len(data) - len(data) // 64 else None

    @abc.abstractmethod
    def compress(self, data: bytes | memoryview) -> bytes:
        """Compress a whole object."""

    @abc.abstractmethod
    def decompress(self, data: bytes | memoryview, size: int) -> bytes | memoryview:
        """Decompress a whole object whose original length is ``size``. Raises ``ValueError`` on bad input."""


class NoCompressor(Compressor):
    name = "none"

    def compress(self, data: bytes | memoryview) -> bytes:
        return bytes(data)

    def decompress(self, data: bytes | memoryview, size: int) -> bytes | memoryview:
        return data


class ZlibCompressor(Compressor):
    name = "zlib"
    default_level = 6

    def compress(self, data: bytes | memoryview) -> bytes:
        return zlib.compress(data, self.level if self.level is not None else 6)

    def decompress(self, data: bytes | memoryview, size: int) -> bytes | memoryview:
        try:
            return zlib.decompress(data, bufsize=max(size, 1))
        except zlib.error as exc:
            raise ValueError(str(exc)) from exc


class Bz2Compressor(Compressor):
    name = "bz2"
    default_level = 9

    def compress(self, data: bytes | memoryview) -> bytes:
        return bz2.compress(data, self.level if self.level is not None else 9)

    def decompress(self, data: bytes | memoryview, size: int) -> bytes | memoryview:
        try:
            return bz2.decompress(data)
        except (OSError, EOFError) as exc:
            raise ValueError(str(exc)) from exc


class ZstdCompressor(Compressor):
    name = "zstd"
    default_level = 1

    def __init__(self, level: int | None = None) -> None:
        super().__init__(level)
        import zstandard

        self._zstd = zstandard
        self._local = threading.local()

    def _pair(self) -> tuple[object, object]:
        pair = getattr(self._local, "pair", None)
        if pair is None:
            pair = (
                self._zstd.ZstdCompressor(level=self.level, write_checksum=False, write_content_size=True),
                self._zstd.ZstdDecompressor(),
            )
            self._local.pair = pair
        return pair

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._pair()[0].compress(data)  # type: ignore[attr-defined,no-any-return]

    def decompress(self, data: bytes | memoryview, size: int) -> bytes | memoryview:
        try:
            return self._pair()[1].decompress(data, max_output_size=size)  # type: ignore[attr-defined,no-any-return]
        except self._zstd.ZstdError as exc:
            raise ValueError(str(exc)) from exc


_cache: dict[tuple[str, int | None], Compressor] = {}
_cache_lock = threading.Lock()


def get_compressor(name: str, level: int | None = None) -> Compressor:
    """The compressor registered as ``name`` (aliases such as ``gzip`` accepted). Raises ``ConfigurationError``."""
    from ashvault import plugins

    key = (canonical_name(name), level)
    with _cache_lock:
        comp = _cache.get(key)
        if comp is None:
            cls = plugins.load_class("ashvault.compressors", key[0], kind="compression algorithm")
            comp = _cache[key] = cls(level)
            if not isinstance(comp, Compressor):
                raise exceptions.ConfigurationError(reason=f"compressor '{name}' is not a Compressor")
    return comp
