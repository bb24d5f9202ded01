"""Checking backups without restoring them, in three depths, and what a failed check does to the record.

- ``full``: every object a backup needs is read and checked against its hash (``backup verify``; any format whose
  handler verifies).
- ``sample``: the manifest and the block index are read and checked, and a share of the data objects, chosen at
  random (seedable, so a check can be repeated), is read and checked too.
- ``metadata``: the manifest and the block index are read and checked, and every object the manifest names must
  be present with the size it records, learnt from the store's listing (:meth:`ObjectStore.object_sizes`; presence
  only on a store that cannot tell sizes). No data object is read. This is restic's ``check`` without
  ``--read-data`` and Benji's ``scrub``.

Sample and metadata checks read the core's chunked format only; other formats say so (``NotSupported``).

A check that finds damage marks the backup ``error`` with a ``fail_reason`` starting with :data:`VERIFY_FAILED`
and naming the object, as Benji marks blocks invalid; such a backup may be verified again, and a later *full*
verify that finds nothing clears it back to ``available`` (a sample or metadata check cannot: it may have missed the
damaged object).
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ashvault import exceptions
from ashvault.catalog import Backup, BackupStatus
from ashvault.driver import BackupInfo, JobContext, VerifyReport

if TYPE_CHECKING:
    from ashvault.formats import Handler

FULL = "full"
SAMPLE = "sample"
METADATA = "metadata"
MODES = (FULL, SAMPLE, METADATA)

VERIFY_FAILED = "verify failed:"
"""How the ``fail_reason`` of a backup a check found damaged starts."""


@dataclasses.dataclass(frozen=True)
class CheckMode:
    """How deep a verify goes; travels in a verify job's options (JSON values only)."""

    kind: str = FULL
    percent: float = 100.0
    """For ``sample``: the share of data objects read, in (0, 100]."""
    seed: int | None = None
    """For ``sample``: the seed of the random choice; None picks one."""

    def __post_init__(self) -> None:
        if self.kind not in MODES:
            raise exceptions.InvalidInput(reason=f"unknown check mode '{self.kind}' (use {', '.join(MODES)})")
        if not (isinstance(self.percent, int | float) and 0 < self.percent <= 100):
            raise exceptions.InvalidInput(reason="--sample must be a percentage above 0 and at most 100")

    @classmethod
    def of(cls, options: dict[str, Any]) -> CheckMode:
        """The mode in a verify job's ``options``; a job without one is a full verify."""
        found = options.get("check") or {}
        return cls(kind=found.get("kind", FULL), percent=found.get("percent", 100.0), seed=found.get("seed"))

    def as_options(self) -> dict[str, Any]:
        return {"check": dataclasses.asdict(self)}

    @property
    def clears(self) -> bool:
        """Whether a clean result proves the backup whole (and so may clear a verify failure)."""
        return self.kind == FULL or (self.kind == SAMPLE and self.percent >= 100)


def damage(report: VerifyReport) -> str:
    """The damage a report lists, in one line naming the first damaged object."""
    obj, why = report.corrupt[0]
    more = len(report.corrupt) - 1
    return f"{obj}: {why}" + (f" ({more} more damaged objects)" if more else "")


def failed_verify(reason: str | None) -> bool:
    return bool(reason and reason.startswith(VERIFY_FAILED))


def problem(exc: exceptions.AshvaultError) -> str:
    """One line on what stopped a check: ``OBJECT: why`` where the error names the object, else its message."""
    obj, why = exc.kwargs.get("object"), exc.kwargs.get("reason")
    if obj and why:
        return f"{obj}: {why}"
    return str(why or exc)


def verifiable(backup: Backup) -> bool:
    """An available backup verifies, and so does one a verify found damaged (to clear it once repaired)."""
    return backup.status in (BackupStatus.AVAILABLE, BackupStatus.RESTORING) or (
        backup.status == BackupStatus.ERROR and failed_verify(backup.fail_reason)
    )


OK = "ok"
FAILED = "failed"
ERROR = "error"
UNSUPPORTED = "not supported"


@dataclasses.dataclass
class Outcome:
    """One backup's line of ``backup verify --all``: ``result`` is ok, failed (damage found), error (the check could
    not run: backend, key) or not supported (by its driver or format)."""

    backup: Backup
    result: str
    objects_checked: int = 0
    bytes_checked: int = 0
    problem: str | None = None

    @classmethod
    def of(cls, backup: Backup, report: VerifyReport) -> Outcome:
        return cls(backup, OK if report.ok else FAILED, report.objects_checked, report.bytes_checked,
                   None if report.ok else damage(report))


class Verified:
    """The objects found whole so far in one ``backup verify --all`` run, so that the backups of a chain, which
    share most of their objects, read each of them once. An object is known by its store, container, name and
    hash."""

    def __init__(self) -> None:
        self._keys: set[tuple[int, str, str, str]] = set()
        self._lock = threading.Lock()

    def __contains__(self, key: tuple[int, str, str, str]) -> bool:
        with self._lock:
            return key in self._keys

    def update(self, keys: Iterable[tuple[int, str, str, str]]) -> None:
        with self._lock:
            self._keys.update(keys)


def run(handler: Handler, backup: BackupInfo, ctx: JobContext, mode: CheckMode, *, what: str,
        verified: Verified | None = None) -> VerifyReport:
    """Check ``backup`` with its format's ``handler`` as deep as ``mode`` says; ``what`` names the driver and format
    in errors. Objects in ``verified`` are counted as checked without being read again, and those this check finds
    whole are added to it. Raises ``NotSupported`` for a partial check of a format other than chunked,
    ``IntegrityError`` or ``InvalidBackup`` when the manifest cannot be read, and driver errors as they come; damaged
    objects are listed in the report."""
    # The engine is imported when data is checked, not by every command that lists backups.
    from ashvault.chunked import ChunkedFormat
    from ashvault.engine import restore as restore_mod
    from ashvault.engine.layout import namespace_of

    chunked = isinstance(handler, ChunkedFormat)
    if mode.kind == FULL and (verified is None or not chunked):
        return handler.verify(backup, ctx)
    if not isinstance(handler, ChunkedFormat):
        flag = "--metadata-only" if mode.kind == METADATA else "--sample"
        raise exceptions.NotSupported(reason=f"{what} cannot be checked with {flag} (only a full verify)")
    container, _prefix = handler.where(backup)
    manifest = handler.read_manifest(backup)
    store = handler.store
    if mode.kind in (FULL, SAMPLE):
        chosen = list(manifest.objects)
        if mode.kind == SAMPLE:
            data = sorted(manifest.objects, key=lambda o: o.name)
            count = min(len(data), math.ceil(len(data) * mode.percent / 100))
            chosen = random.Random(mode.seed).sample(data, count)
        if manifest.index is not None:
            chosen.append(manifest.index)
        todo = chosen
        if verified is not None:
            todo = [e for e in chosen if (id(store), container, e.name, e.hash) not in verified]
        workers = max(handler.settings.threads, handler.settings.transfers)
        report = restore_mod.verify(store, container, manifest, ctx, workers=workers, entries=todo)
        report.objects_checked += len(chosen) - len(todo)
        if verified is not None:
            bad = {name for name, _why in report.corrupt}
            verified.update((id(store), container, e.name, e.hash) for e in todo if e.name not in bad)
        return report
    report = VerifyReport(backup.id)
    if manifest.index is not None:
        try:
            restore_mod.check_stored(store, container, manifest.index, backup.id)
        except exceptions.IntegrityError as exc:
            report.corrupt.append((manifest.index.name, exc.kwargs.get("reason", str(exc))))
        report.objects_checked += 1
        report.bytes_checked += manifest.index.stored_size
    listed: dict[str, dict[str, int] | set[str]] = {}
    total = sum(o.stored_size for o in manifest.objects)
    done = 0
    for entry in manifest.objects:
        space = namespace_of(entry.name)
        if space not in listed:
            ctx.check()
            sizes = store.object_sizes(container, space + "/")
            listed[space] = sizes if sizes is not None else set(store.list_objects(container, space + "/"))
        found = listed[space]
        if entry.name not in found:
            report.corrupt.append((entry.name, "object is missing"))
        elif isinstance(found, dict) and found[entry.name] != entry.stored_size:
            report.corrupt.append((entry.name, f"{found[entry.name]} bytes stored, the manifest records "
                                               f"{entry.stored_size}"))
        report.objects_checked += 1
        done += entry.stored_size
        ctx.progress(done, total)  # the bytes whose presence is checked, as a full verify reports those read
    report.corrupt.sort()
    return report
