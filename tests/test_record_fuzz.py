"""Backup records fuzzed with hypothesis (issue 18): ``API.backup_import`` over a posix repository holding a real
backup either imports a record that matches the backup's manifest, or refuses with one typed one-line error; no
other exception, no hang (a deadline per case), and nothing written outside the state directory, nothing at all
in the repository, no lock file or row on a refusal. The test prints how many cases it ran: 300 + 150 by default."""

from __future__ import annotations

import base64
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from clitools import Ashvault, MiB
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_records import BAD_FIELDS

from ashvault import exceptions
from ashvault.api import API, RECORD_FIELDS
from ashvault.conf import make_config
from ashvault.testing import volumes

NASTY = st.sampled_from([
    "", " ", ".", "..", "../x", "../../etc/passwd", "/abs", "a/b", "a\x00b", "\x1b[2Jx", "x" * 300, "é", "\u202e",
    "00000000-0000-0000-0000-000000000000", "2026-01-01T00:00:00", "9999-12-31T23:59:59+14:00", "NaN", "-1",
    "chunked/1", "ceph-rbd/1", "available",
])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=10)
    | NASTY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KEYS = st.sampled_from([*RECORD_FIELDS, "driver_info", "status", "extra"])


def fuzz(examples: int) -> settings:
    """Seeded (the same cases every run, no example database), each case at most 2 s."""
    return settings(max_examples=examples, deadline=2000, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def snapshot(root: pathlib.Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file() and not p.name.startswith("ashvault.sqlite")}


class Site:
    """A second site over the repository of a first one that made a backup: what an import meets."""

    def __init__(self, root: pathlib.Path) -> None:
        (root / "one").mkdir()
        first = Ashvault(root / "one")
        (root / "two").mkdir()
        self.two = Ashvault(root / "two", f"[backup_posix]\npath = {first.backups}\n")
        path = str(root / "v.img")
        volumes.write_mixed(path, 4 * MiB, seed=9, run=MiB)
        first.j("volume", "register", "v", path)
        made = first.j("backup", "create", "v")
        self.doc = dict(json.loads(base64.b64decode(first.j("backup", "record", "export", made["id"])["backup_url"])))
        self.root, self.repo = root, first.backups
        self.api = API(make_config(config_files=[str(self.two.conf)]))
        self.cases = 0
        self.outcomes: dict[str, int] = {}

    def attempt(self, url: str) -> None:
        """Import ``url`` and check the outcome; an imported record is removed again for the next case."""
        before, locks = snapshot(self.root), snapshot(self.two.state / "locks")
        try:
            got = self.api.backup_import("posix", url)
        except exceptions.AshvaultError as exc:
            text = str(exc)
            assert text.isprintable() and len(text) < 600, text
            assert snapshot(self.two.state / "locks") == locks, "a refused import left a lock file"
            assert self.api.catalog.list_backups(deleted=True) == [], "a refused import left a row"
            outcome = type(exc).__name__
        else:
            assert (got.id, got.volume_id, got.size) == (self.doc["id"], self.doc["volume_id"], self.doc["size"])
            assert got.status == "available"
            self.api.catalog.purge_backup(got.id)
            outcome = "imported"
        after = snapshot(self.root)
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        assert all(k.startswith("two/state/locks/") for k in changed), f"written: {sorted(changed)}"
        self.cases += 1
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    made = Site(tmp_path_factory.mktemp("record-fuzz"))
    yield made
    made.api.close()
    print(f"\nrecord fuzz cases run: {made.cases} {dict(sorted(made.outcomes.items()))}")


def encode(doc: Any) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


def test_the_exported_record_imports_and_every_known_bad_field_is_refused(site: Site) -> None:
    site.attempt(encode(site.doc))
    assert site.outcomes == {"imported": 1}
    for field, value, said in BAD_FIELDS:
        with pytest.raises(exceptions.InvalidInput, match=said.replace("(", r"\(")):
            site.api.backup_import("posix", encode({**site.doc, field: value}))


@fuzz(300)
@given(changes=st.dictionaries(KEYS, JSON, min_size=1, max_size=3), drop=st.sets(KEYS, max_size=2))
def test_fuzzed_fields(site: Site, changes: dict[str, Any], drop: set[str]) -> None:
    doc = {k: v for k, v in {**site.doc, **changes}.items() if k not in drop}
    site.attempt(encode(doc))


@fuzz(150)
@given(whole=JSON | st.text(max_size=40).map(lambda t: {"raw": t}), raw=st.booleans())
def test_fuzzed_documents(site: Site, whole: Any, raw: bool) -> None:
    url = whole["raw"] if raw and isinstance(whole, dict) and "raw" in whole else encode(whole)
    site.attempt(url)
