"""Hash and compression candidates on the benchmark mix: one core, CPU time, so a busy machine skews it little.

    .venv/bin/python benchmarks/codec_choice.py [--runs 48]

The figures behind the hash and default compression level in docs/performance.md ("Choices and measurements").
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import random
import time
import zlib
from collections.abc import Callable

import blake3
import zstandard

from ashvault.testing.volumes import text_run

MiB = 1 << 20


def mix(runs: int, seed: int) -> list[bytes]:
    """The non-zero 4 MiB runs of the benchmark mix (zero runs never reach a compressor)."""
    rnd = random.Random(seed)
    out = []
    for _ in range(runs):
        kind = rnd.random()
        if kind < 0.4:
            continue
        out.append(text_run(rnd, 4 * MiB) if kind < 0.7 else rnd.randbytes(4 * MiB))
    return out


def cpu_seconds(fn: Callable[[bytes], bytes], items: list[bytes]) -> tuple[float, list[bytes]]:
    start = time.process_time()
    out = [fn(x) for x in items]
    return time.process_time() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=48, help="4 MiB runs drawn (40%% of them zero, skipped)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    data = mix(args.runs, args.seed)
    total = sum(map(len, data))
    print(f"{total / MiB:.0f} MiB of text-like and random runs, one core")
    print(f"{'hash':18} {'MB/s':>8}")
    hashes: list[tuple[str, Callable[[bytes], bytes]]] = [
        ("blake3", lambda b: blake3.blake3(b).digest()),
        ("sha256", lambda b: hashlib.sha256(b).digest()),
        ("blake2b", lambda b: hashlib.blake2b(b).digest()),
        ("md5", lambda b: hashlib.md5(b).digest()),
    ]
    for name, fn in hashes:
        seconds, _ = cpu_seconds(fn, data)
        print(f"{name:18} {total / seconds / 1e6:8.0f}")
    print(f"{'compressor':18} {'MB/s in':>8} {'ratio':>6} {'MB/s out':>9}")
    codecs: list[tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]] = [
        (f"zstd {level}", zstandard.ZstdCompressor(level=level).compress, zstandard.ZstdDecompressor().decompress)
        for level in (-5, -1, 1, 3, 6)
    ]
    codecs += [
        ("zlib 1", lambda b: zlib.compress(b, 1), zlib.decompress),
        ("zlib 6 (Cinder)", lambda b: zlib.compress(b, 6), zlib.decompress),
        ("bz2 9", lambda b: bz2.compress(b, 9), bz2.decompress),
    ]
    for name, compress, decompress in codecs:
        seconds, packed = cpu_seconds(compress, data)
        stored = sum(min(len(p), len(d)) for p, d in zip(packed, data, strict=True))
        back, _ = cpu_seconds(decompress, packed)
        print(f"{name:18} {total / seconds / 1e6:8.0f} {total / stored:6.2f} {total / back / 1e6:9.0f}")


if __name__ == "__main__":
    main()
