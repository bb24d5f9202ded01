"""Seeded test volumes: a mix of zero, text-like and random runs, optionally sparse, and a scattered mutator."""

from __future__ import annotations

import hashlib
import os
import random

from ashvault.blocks import BLOCK

MiB = 1 << 20

_WORDS = (b"volume backup restore chunk object manifest incremental snapshot container driver ceph swift "
          b"posix block sparse zero hash compress verify catalog record status available error deleting").split()


def text_run(rnd: random.Random, size: int) -> bytes:
    """Text-like bytes that compress about 3:1 with zlib."""
    out = bytearray()
    while len(out) < size:
        line = b" ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(4, 12)))
        out += line + b" %d\n" % rnd.randrange(1 << 30)
    return bytes(out[:size])


def write_mixed(path: str, size: int, *, seed: int, run: int = 4 * MiB, sparse: bool = False,
                zero: float = 0.4, text: float = 0.3) -> str:
    """``size`` bytes of runs: ``zero`` share all-zero (holes when ``sparse``), ``text`` share text, rest random."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for off in range(0, size, run):
            n = min(run, size - off)
            kind = rnd.random()
            if kind < zero:
                if not sparse:
                    f.seek(off)
                    f.write(bytes(n))
                continue
            f.seek(off)
            f.write(text_run(rnd, n) if kind < zero + text else rnd.randbytes(n))
        f.flush()
        os.fsync(f.fileno())
    return path


def mutate(path: str, *, percent: float, seed: int, block: int = BLOCK) -> list[int]:
    """Overwrite ``percent`` % of the ``block``-sized blocks at scattered offsets with random bytes."""
    rnd = random.Random(seed)
    with open(path, "r+b") as f:
        nblocks = f.seek(0, os.SEEK_END) // block  # a block device's size too, which getsize calls 0
        picked = sorted(rnd.sample(range(nblocks), max(1, int(nblocks * percent / 100))))
        for b in picked:
            f.seek(b * block)
            f.write(rnd.randbytes(block))
        f.flush()
        os.fsync(f.fileno())
    return picked


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(8 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


class VolumeMaker:
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def mixed(self, name: str, size: int, *, seed: int, sparse: bool = False) -> str:
        return write_mixed(os.path.join(self.directory, name), size, seed=seed, run=MiB, sparse=sparse)

    def random(self, name: str, size: int, *, seed: int) -> str:
        return write_mixed(os.path.join(self.directory, name), size, seed=seed, run=MiB, zero=0, text=0)
