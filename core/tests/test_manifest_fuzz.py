"""Manifests fuzzed with hypothesis (issue 18): whatever bytes stand in a backup's manifest, reading it either gives
a manifest bound to the backup with every extent in bounds, or raises one typed one-line error; nothing else, and
no hang (each example has a deadline). Each test prints how many cases it ran; 300 + 300 + 200 by default."""

from __future__ import annotations

import json
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ashvault import exceptions
from ashvault.engine.layout import Binding, Manifest, ObjectEntry, content_hash, read_manifest
from ashvault.testing.fakes import MemoryObjectStore

PREFIX = "volume_v1/backup_b1"


def fuzz(examples: int) -> settings:
    """Seeded (the same cases every run, no example database), each case at most 2 s."""
    return settings(max_examples=examples, deadline=2000, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
EDGES = st.sampled_from([0, 1, 4096, 65536, 1 << 20, (1 << 20) - 4096, 2 << 20, 4 << 20, (4 << 20) + 1, 2**63])
NUMBERS = st.integers(min_value=-3, max_value=2**64) | EDGES | EDGES | EDGES


def good_doc() -> dict[str, Any]:
    obj = ObjectEntry(f"{PREFIX}/d00000000", 100, 1 << 20, "zstd", "ab" * 32)
    index = ObjectEntry(f"{PREFIX}/index", 10, 8 * 64, "zstd", "cd" * 32)
    m = Manifest("b1", "v1", 4 << 20, 65536, [obj], [(0, 1 << 20, 0, 0), (2 << 20, 4096, 0, 65536)], index)
    return dict(json.loads(m.to_json()))


class Counter:
    def __init__(self) -> None:
        self.cases = 0
        self.outcomes: dict[str, int] = {}

    def seen(self, outcome: str) -> None:
        self.cases += 1
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def read(raw: bytes, binding: Binding, counter: Counter) -> None:
    """Read ``raw`` as the manifest of backup b1; assert the outcome is a bound, in-bounds manifest or one typed,
    one-line error."""
    store = MemoryObjectStore()
    store.put_container("c")
    store.put_object("c", f"{PREFIX}/manifest", raw)
    try:
        m = read_manifest(store, "c", PREFIX, binding)
    except exceptions.AshvaultError as exc:
        text = str(exc)
        assert text.isprintable() and len(text) < 600, text
        assert isinstance(exc, exceptions.IntegrityError | exceptions.InvalidBackup), repr(exc)
        counter.seen(type(exc).__name__)
        return
    assert (m.backup_id, m.volume_id) == ("b1", "v1")
    assert binding.size is None or m.size == binding.size
    end = 0
    for off, length, idx, obj_off in m.extents:
        assert length > 0 and off >= end and off + length <= m.size
        assert 0 <= idx < len(m.objects) and obj_off >= 0 and obj_off + length <= m.objects[idx].size
        end = off + length
    counter.seen("accepted")


@pytest.fixture(scope="module")
def counters() -> Any:
    found: dict[str, Counter] = {}
    yield found
    for name, c in found.items():
        print(f"\nmanifest fuzz cases run ({name}): {c.cases} {dict(sorted(c.outcomes.items()))}")


def test_a_valid_manifest_reads_back() -> None:
    raw = zstandard.ZstdCompressor().compress(json.dumps(good_doc()).encode())
    counter = Counter()
    read(raw, Binding("b1", "v1", 4 << 20, content_hash(raw)), counter)
    assert counter.outcomes == {"accepted": 1}


@fuzz(300)
@given(field=st.sampled_from(sorted(good_doc())), value=JSON, hashed=st.booleans())
def test_fuzzed_fields(counters: dict[str, Counter], field: str, value: Any, hashed: bool) -> None:
    counter = counters.setdefault("fields", Counter())
    raw = zstandard.ZstdCompressor().compress(json.dumps({**good_doc(), field: value}).encode())
    read(raw, Binding("b1", "v1", None, content_hash(raw) if hashed else None), counter)


@fuzz(300)
@given(extents=st.lists(st.lists(NUMBERS, min_size=3, max_size=5), max_size=4),
       objects=st.lists(st.lists(st.text(max_size=6) | NUMBERS, min_size=4, max_size=6), max_size=3)
       | st.none() | st.none(),
       size=EDGES, block_size=EDGES, bound_size=st.booleans())
def test_fuzzed_extents_and_objects(counters: dict[str, Counter], extents: list[Any], objects: list[Any] | None,
                                    size: int, block_size: int, bound_size: bool) -> None:
    counter = counters.setdefault("extents", Counter())
    doc = good_doc()
    doc.update(extents=extents, size=size, block_size=block_size, index=None)
    if objects is not None:
        doc["objects"] = objects
    raw = zstandard.ZstdCompressor().compress(json.dumps(doc).encode())
    read(raw, Binding("b1", "v1", 4 << 20 if bound_size else None), counter)


@fuzz(200)
@given(data=st.binary(max_size=300), compress=st.booleans())
def test_fuzzed_bytes(counters: dict[str, Counter], data: bytes, compress: bool) -> None:
    counter = counters.setdefault("bytes", Counter())
    raw = zstandard.ZstdCompressor().compress(data) if compress else data
    read(raw, Binding("b1"), counter)
    assert counter.outcomes.get("accepted", 0) == 0
