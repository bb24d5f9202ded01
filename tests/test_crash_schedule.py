"""Kill -9 at 20 points of full and incremental backups, restores, deletes and garbage collection, chosen by a
seeded schedule, each in a real ``ashvault`` process killed by the hook of :mod:`ashvault.testing.crash` as its
N-th store call of a kind begins (or, for some, once it has returned).

After each kill the next command resolves the interrupted one, every ``available`` backup verifies (and those the
point touched restore byte-identical; all of them at the end), and once the cleanup has run (the failed backup
deleted, the interrupted delete resumed) every file of the posix repository is a live manifest, an object a live
manifest references, or the tombstone of a deleted backup whose objects are still in use. The schedule's seed is
printed; ``ASHVAULT_CRASH_SEED=<seed>`` replays one.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import pathlib
import random
from typing import Any

import pytest
import zstandard
from clitools import Ashvault, MiB, sha256

from ashvault.api import API
from ashvault.blocks import BLOCK
from ashvault.conf import make_config
from ashvault.testing import crash, volumes

SIZE = 32 * MiB
OBJECT = MiB
PER_KIND = 4
CONTAINER = "volumebackups"


def _manifest(path: pathlib.Path) -> dict[str, Any]:
    with zstandard.ZstdDecompressor().stream_reader(path.read_bytes()) as r:
        doc: dict[str, Any] = json.loads(r.read())
    return doc


def _nonzero_blocks(path: str) -> int:
    """Blocks a full backup stores: no object holds more than ``OBJECT`` bytes of them."""
    zero = bytes(BLOCK)
    with open(path, "rb") as f:
        return sum(1 for block in iter(lambda: f.read(BLOCK), b"") if block != zero[: len(block)])


def _referenced(doc: dict[str, Any]) -> set[str]:
    names = {o[0] for o in doc["objects"]}
    if doc.get("index"):
        names.add(doc["index"][0])
    return names


@dataclasses.dataclass
class Point:
    kind: str
    spec: str
    target: str
    """The backup the point interrupted (its name for a backup, its id otherwise)."""


class Suite:
    def __init__(self, av: Ashvault, tmp: pathlib.Path, rnd: random.Random) -> None:
        self.av = av
        self.tmp = tmp
        self.rnd = rnd
        self.root = av.backups / CONTAINER
        self.want: dict[str, str] = {}
        """Backup id -> sha256 of its volume when it was taken, for every backup that became available."""
        self.killed: collections.Counter[str] = collections.Counter()
        self.checked = 0
        self.verified = 0
        self.leaks: dict[str, str] = {}
        """Each leaked file (or empty directory), with the point after whose cleanup it was first seen."""
        self.paths = {f"v{n}": str(tmp / f"v{n}.img") for n in range(2)}
        for n, (name, path) in enumerate(self.paths.items()):
            volumes.write_mixed(path, SIZE, seed=rnd.randrange(1 << 30) + n, run=MiB, zero=0.15, text=0.35)
            av.j("volume", "register", name, path)
            self.backup(name, incremental=False)
        self.target = av.j("volume", "create", "target", "--size", str(SIZE / (1 << 30)))["id"]

    # operations that are not killed

    def backup(self, volume: str, *, incremental: bool) -> dict[str, Any]:
        b: dict[str, Any] = self.av.j("backup", "create", volume, *(["--incremental"] if incremental else []))
        self.want[b["id"]] = sha256(self.paths[volume])
        return b

    def api(self) -> API:
        """The core in this process, for checks that need no new command each (the commands are the killed ones)."""
        return API(make_config(config_files=[str(self.av.conf)]), cleanup=False)

    def available(self) -> list[dict[str, Any]]:
        api = self.api()
        try:
            return [{"id": b.id, "volume_id": b.volume_id} for b in api.backup_list() if b.status == "available"]
        finally:
            api.close()

    # the killed command

    def kill(self, kind: str, spec: str, *args: str) -> None:
        proc = self.av.popen(*args, env={crash.ENV: spec})
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == -9, (
            f"{kind} point {spec} was not killed: ashvault {' '.join(args)} exited {proc.returncode}: {err}{out}"
        )
        self.killed[kind] += 1

    def kill_backup(self, index: int, volume: str, *, incremental: bool) -> Point:
        if incremental and not [b for b in self.available() if b["volume_id"] == self._volume_id(volume)]:
            self.backup(volume, incremental=False)
        if incremental:
            share = self.rnd.uniform(3, 12)
            changed = volumes.mutate(self.paths[volume], percent=share, seed=self.rnd.randrange(1 << 30))
            least = math.ceil(len(changed) * BLOCK / OBJECT) + 2  # data objects, the index, the manifest
        else:
            volumes.mutate(self.paths[volume], percent=2, seed=self.rnd.randrange(1 << 30))
            least = math.ceil(_nonzero_blocks(self.paths[volume]) * BLOCK / OBJECT) + 2
        nth = self.rnd.randint(1, least)
        spec = f"put:{nth}" + (":after" if nth == least and self.rnd.random() < 0.5 else "")
        kind = "incremental" if incremental else "full"
        name = f"p{index}"
        self.kill(kind, spec, "backup", "create", volume, "--name", name, *(["--incremental"] if incremental else []))
        shown = self.av.j("backup", "show", name)
        assert shown["status"] == "error" and "incomplete" in shown["fail_reason"], shown
        assert self.av.j("volume", "show", volume)["status"] == "available"
        return Point(kind, spec, shown["id"])

    def kill_cleanup(self, backup_id: str) -> Point:
        """Delete the failed backup ``backup_id``, killed during its collection."""
        b = self.av.j("backup", "show", backup_id)
        files = [f for f in self._files(b["volume_id"], backup_id) if not f.name.startswith(".tmp-")]
        # Its manifest's delete comes first, whether it exists or not, then its objects and its tombstone.
        spec = f"delete:{self.rnd.randint(1, 1 + len(files))}"
        self.kill("gc", spec, "backup", "delete", backup_id)
        self._assert_deleted(backup_id)
        return Point("gc", spec, backup_id)

    def kill_restore(self) -> Point:
        b = self.rnd.choice(self.available())
        doc = _manifest(self._prefix(b["volume_id"], b["id"]) / "manifest")
        spec = f"get:{self.rnd.randint(1, len(doc['objects']) + 1)}"  # the manifest, then the objects (and the index)
        self.kill("restore", spec, "backup", "restore", b["id"], "target", "--force")
        assert self.av.j("backup", "show", b["id"])["status"] == "available"
        assert self.av.j("volume", "show", "target")["status"] == "error_restoring"
        self.restore(b["id"])
        return Point("restore", spec, b["id"])

    def kill_delete(self) -> Point:
        live = self.available()
        if len(live) < 3:
            volume = self.rnd.choice(sorted(self.paths))
            self.backup(volume, incremental=any(b["volume_id"] == self._volume_id(volume) for b in live))
            live = self.available()
        b = self.rnd.choice(live)
        others: set[str] = set()
        for o in live:
            if o["id"] != b["id"]:
                others |= _referenced(_manifest(self._prefix(o["volume_id"], o["id"]) / "manifest"))
        mine = {f"volume_{b['volume_id']}/backup_{b['id']}/{f.name}" for f in self._files(b["volume_id"], b["id"])}
        unused = mine - others - {f"volume_{b['volume_id']}/backup_{b['id']}/manifest"}
        spec = f"delete:{self.rnd.randint(1, 1 + len(unused))}"
        self.kill("delete", spec, "backup", "delete", b["id"])
        self._assert_deleted(b["id"])
        del self.want[b["id"]]
        return Point("delete", spec, b["id"])

    # checks

    def restore(self, backup_id: str) -> None:
        done = self.av.j("backup", "restore", backup_id, "target", "--force")
        assert sha256(done["volume_location"]) == self.want[backup_id], f"backup {backup_id} restored wrong bytes"
        self.checked += 1

    def verify_all(self, point: Point) -> None:
        api = self.api()
        try:
            listed = api.backup_list()
            assert {b.id for b in listed if b.status == "available"} == set(self.want), f"after {point}: {listed}"
            assert not [b for b in listed if b.status in ("creating", "deleting", "restoring")], listed
            for b in [b for b in listed if b.status == "available"]:
                report = api.backup_verify(b.id)
                assert report.ok, f"after {point}: backup {b.id} no longer verifies: {report}"
                self.verified += 1
        finally:
            api.close()

    def leaked(self) -> list[str]:
        """Files of the repository that are neither a live manifest, nor used by one, nor a needed tombstone."""
        live_ids = {b["id"] for b in self.available()}
        files = {str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()}
        used: set[str] = set()
        for name in files:
            space, _, leaf = name.rpartition("/")
            if leaf == "manifest" and f"{space}/tombstone" not in files:
                assert space.rsplit("backup_", 1)[-1] in live_ids, f"a manifest of a backup not available: {name}"
                used |= _referenced(_manifest(self.root / name)) | {name}
        for b in self.available():
            assert f"volume_{b['volume_id']}/backup_{b['id']}/manifest" in used, f"backup {b['id']} lost its manifest"
        spaces_in_use = {n.rpartition("/")[0] for n in used}
        kept = {n for n in files if n.endswith("/tombstone") and n.rpartition("/")[0] in spaces_in_use}
        dirs = [d for d in self.root.rglob("*") if d.is_dir()]
        empty = [f"{d.relative_to(self.root)}/" for d in dirs if not any(d.iterdir())]
        return sorted(files - used - kept) + empty

    def _assert_deleted(self, backup_id: str) -> None:
        listed = {b["id"]: b["status"] for b in self.av.j("backup", "list")}
        assert backup_id not in listed, f"the interrupted delete of {backup_id} was not resumed: {listed}"

    def _volume_id(self, volume: str) -> str:
        return str(self.av.j("volume", "show", volume)["id"])

    def _prefix(self, volume_id: str, backup_id: str) -> pathlib.Path:
        return self.root / f"volume_{volume_id}" / f"backup_{backup_id}"

    def _files(self, volume_id: str, backup_id: str) -> list[pathlib.Path]:
        d = self._prefix(volume_id, backup_id)
        return sorted(d.iterdir()) if d.is_dir() else []


def _schedule(rnd: random.Random) -> list[str]:
    """Four points of each kind; each ``gc`` point comes right after the backup point whose debris it collects."""
    kinds = ["full"] * PER_KIND + ["incremental"] * PER_KIND + ["restore"] * PER_KIND + ["delete"] * PER_KIND
    rnd.shuffle(kinds)
    with_gc = set(rnd.sample([i for i, k in enumerate(kinds) if k in ("full", "incremental")], PER_KIND))
    out: list[str] = []
    for i, k in enumerate(kinds):
        out += [k, "gc"] if i in with_gc else [k]
    return out


def test_kill_schedule(av: Ashvault, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("ASHVAULT_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    with capsys.disabled():
        print(f"\nkill -9 schedule: seed {seed} (ASHVAULT_CRASH_SEED={seed} replays it)")
    rnd = random.Random(seed)
    av.write_conf(f"[backup_posix]\npath = {av.backups}\nobject_size = {OBJECT}\n")
    suite = Suite(av, tmp_path, rnd)
    schedule = _schedule(rnd)
    done: list[Point] = []
    failed: str | None = None
    for i, kind in enumerate(schedule):
        volume = rnd.choice(sorted(suite.paths))
        if kind in ("full", "incremental"):
            point = suite.kill_backup(i, volume, incremental=kind == "incremental")
            failed = point.target
        elif kind == "gc":
            assert failed is not None
            point = suite.kill_cleanup(failed)
            failed = None
        elif kind == "restore":
            point = suite.kill_restore()
        else:
            point = suite.kill_delete()
        done.append(point)
        suite.verify_all(point)
        if failed is not None and (i + 1 == len(schedule) or schedule[i + 1] != "gc"):
            av("backup", "delete", failed)  # the cleanup of a failed backup whose delete is not itself killed
            failed = None
        if failed is None:
            for name in suite.leaked():
                suite.leaks.setdefault(name, f"after {point.kind} point {point.spec}: {name}")
    for backup_id in sorted(suite.want):
        suite.restore(backup_id)
    points = sum(suite.killed.values())
    with capsys.disabled():
        print(f"kill -9 schedule (seed {seed}): {points} points killed ("
              + ", ".join(f"{n} {k}" for k, n in sorted(suite.killed.items()))
              + f"), {suite.verified} verifies of every available backup after each point, {suite.checked} restores"
              f" byte-identical, {len(suite.leaks)} objects leaked")
        for p in done:
            print(f"  {p.kind:12} {p.spec:16} {p.target}")
    assert points == 5 * PER_KIND
    assert not suite.leaks, "\n".join(suite.leaks.values())
