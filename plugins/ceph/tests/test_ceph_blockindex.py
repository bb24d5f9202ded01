"""The block checksums of RBD backups, without a cluster."""

from __future__ import annotations

import os

import pytest

from ashvault_ceph.blockindex import BLOCK, BlockIndex, align


def test_align_widens_merges_and_clips() -> None:
    size = 10 * BLOCK + 100
    assert align([(5, 10, True), (BLOCK - 1, 2, False), (9 * BLOCK + 7, 5 * BLOCK, True)], size) == [
        (0, 2 * BLOCK, True), (9 * BLOCK, BLOCK + 100, True)]
    assert align([], size) == []


def test_update_check_round_trip_and_resize() -> None:
    size = 4 * BLOCK + 10
    data = bytearray(os.urandom(size))
    data[BLOCK : 2 * BLOCK] = bytes(BLOCK)
    index = BlockIndex(size)
    index.update(0, bytes(data))
    assert index.buf[16:32] == bytes(16)  # a zero block is the sentinel
    again = BlockIndex.decode(index.encode(), size)
    assert again.mismatches(0, bytes(data)) == []
    data[3 * BLOCK + 5] ^= 1
    assert again.mismatches(0, bytes(data)) == [3 * BLOCK]
    assert again.data_outside([(0, 2 * BLOCK, True)]) == [2 * BLOCK, 3 * BLOCK, 4 * BLOCK]
    bigger = again.resized(8 * BLOCK)
    assert bigger.blocks == 8 and bigger.data_outside([(0, 5 * BLOCK, True)]) == []
    with pytest.raises(ValueError):
        BlockIndex.decode(b"garbage", size)
