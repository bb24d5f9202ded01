"""Seeded benchmark volumes (issue 3): 4 MiB runs of 40% zeros, 30% text-like, 30% random, and a 1% mutator.

Each run's content depends only on (seed, run index), and the mix of kinds is exact (counts, then shuffled),
so any size gives the same proportions. ``ashvault.testing.volumes`` has the same idea but text at about 4.4:1
and 20 MB/s; this one is about 3.1:1 under zlib-6 (3.3:1 under zstd-3) and about 60 MB/s.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

# The core's mutator and checksum, the ones its own tests use.
from ashvault.testing.volumes import mutate as mutate
from ashvault.testing.volumes import sha256_file as sha256_file

MiB = 1 << 20
GiB = 1 << 30
RUN = 4 * MiB
_LETTERS = b"abcdefghijklmnopqrstuvwxyz"


def _vocabulary(seed: int) -> list[bytes]:
    """256 words of 2-8 letters, one in 16 ending a line: indexed by a random byte."""
    rnd = random.Random(f"vocab:{seed}")
    words = [bytes(rnd.choices(_LETTERS, k=rnd.randint(2, 8))) for _ in range(256)]
    return [w + (b"\n" if i % 16 == 0 else b" ") for i, w in enumerate(words)]


def text_run(rnd: random.Random, vocab: list[bytes], size: int) -> bytes:
    """``size`` bytes of word salad, about 3.1:1 under zlib-6."""
    out = b""
    while len(out) < size:
        out += b"".join(map(vocab.__getitem__, rnd.randbytes(size // 5)))
    return out[:size]


@dataclass(frozen=True)
class Layout:
    """What a generated volume holds: per 4 MiB run, 'z' (zeros), 't' (text) or 'r' (random)."""

    size: int
    kinds: str

    @property
    def data_bytes(self) -> int:
        """Bytes outside the zero runs (what a sparse restore must allocate, at most)."""
        return sum(min(RUN, self.size - i * RUN) for i, k in enumerate(self.kinds) if k != "z")


def layout(size: int, seed: int, zero: float = 0.4, text: float = 0.3) -> Layout:
    runs = -(-size // RUN)
    nz, nt = round(runs * zero), round(runs * text)
    kinds = ["z"] * nz + ["t"] * nt + ["r"] * (runs - nz - nt)
    random.Random(f"kinds:{seed}").shuffle(kinds)
    return Layout(size, "".join(kinds))


def run_bytes(seed: int, index: int, kind: str, n: int, vocab: list[bytes]) -> bytes:
    rnd = random.Random(f"run:{seed}:{index}")
    return text_run(rnd, vocab, n) if kind == "t" else rnd.randbytes(n)


def write_volume(path: str, size: int, *, seed: int = 1, sparse: bool = False,
                 zero: float = 0.4, text: float = 0.3) -> Layout:
    """Write the volume at ``path`` (replaced) and fsync it; zero runs are holes when ``sparse``."""
    lay = layout(size, seed, zero, text)
    vocab = _vocabulary(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for i, kind in enumerate(lay.kinds):
            if kind == "z" and sparse:
                continue
            n = min(RUN, size - i * RUN)
            f.seek(i * RUN)
            f.write(bytes(n) if kind == "z" else run_bytes(seed, i, kind, n, vocab))
        f.flush()
        os.fsync(f.fileno())
    return lay


def write_spread(path: str, size: int, data: int, *, seed: int = 1) -> int:
    """A sparse file of ``size`` bytes holding ``data`` bytes of text/random runs spread evenly; returns data."""
    runs = data // RUN
    stride = max(1, (size // RUN) // runs)
    vocab = _vocabulary(seed)
    kinds = layout(data, seed, zero=0.0, text=0.5).kinds
    with open(path, "wb") as f:
        f.truncate(size)
        for i, kind in enumerate(kinds):
            f.seek(i * stride * RUN)
            f.write(run_bytes(seed, i, kind, RUN, vocab))
        f.flush()
        os.fsync(f.fileno())
    return runs * RUN
