"""Retention rules for ``backup prune``: which of a volume's backups to keep, as restic's and borg's ``--keep-*``.

``last`` keeps the newest N backups. ``hourly`` .. ``yearly`` keep the newest backup of each of the N newest hours,
days, ISO weeks, months or years that have one (UTC, by the time the backup's data was taken). A backup is kept
when any rule keeps it; protected backups are always kept, and only available backups are ever candidates. Rules
apply to each volume on its own.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable

from ashvault.catalog import Backup, BackupStatus

PERIODS: dict[str, Callable[[datetime.datetime], tuple[int, ...]]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar()[:2]),
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}
RULES = ("last", *PERIODS)


@dataclasses.dataclass
class Policy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def empty(self) -> bool:
        return not any(getattr(self, rule) for rule in RULES)

    def describe(self) -> str:
        return ", ".join(f"{rule} {getattr(self, rule)}" for rule in RULES if getattr(self, rule))


@dataclasses.dataclass
class Decision:
    backup: Backup
    keep: bool
    reasons: list[str]


def taken_at(b: Backup) -> datetime.datetime:
    t = b.data_timestamp or b.created_at
    return t.astimezone(datetime.UTC)


def decide(backups: Iterable[Backup], policy: Policy) -> list[Decision]:
    """A decision for each available backup of one volume, newest first; other statuses are left out."""
    candidates = sorted((b for b in backups if b.status == BackupStatus.AVAILABLE and not b.deleted),
                        key=lambda b: (taken_at(b), b.created_at), reverse=True)
    reasons: dict[str, list[str]] = {b.id: [] for b in candidates}
    for b in candidates:
        if b.protected:
            reasons[b.id].append("protected")
    for b in candidates[:policy.last]:
        reasons[b.id].append("last")
    for rule, period in PERIODS.items():
        left = getattr(policy, rule)
        seen: tuple[int, ...] | None = None
        for b in candidates:
            if left <= 0:
                break
            key = period(taken_at(b))
            if key != seen:
                seen = key
                reasons[b.id].append(rule)
                left -= 1
    return [Decision(b, bool(reasons[b.id]), reasons[b.id]) for b in candidates]
