"""Retention rules on backups with made-up times: each rule, their union, protection and statuses."""

from __future__ import annotations

import datetime

from ashvault.catalog import Backup, BackupStatus
from ashvault.retention import Policy, decide


def _b(n: int, when: str, *, status: str = BackupStatus.AVAILABLE, protected: bool = False) -> Backup:
    t = datetime.datetime.fromisoformat(when).replace(tzinfo=datetime.UTC)
    return Backup(id=f"b{n}", volume_id="v", status=status, data_timestamp=t, created_at=t, protected=protected)


TIMES = ["2024-12-31 23:00", "2025-01-01 01:00", "2025-01-01 02:30", "2025-01-01 02:45", "2025-01-06 10:00",
         "2025-02-01 10:00", "2025-02-02 10:00"]


def kept(policy: Policy, backups: list[Backup] | None = None) -> list[str]:
    found = decide(backups or [_b(n, t) for n, t in enumerate(TIMES)], policy)
    return sorted(d.backup.id for d in found if d.keep)


def test_each_rule_keeps_the_newest_of_each_period() -> None:
    assert kept(Policy(last=2)) == ["b5", "b6"]
    assert kept(Policy(hourly=3)) == ["b4", "b5", "b6"]
    assert kept(Policy(hourly=5)) == ["b1", "b3", "b4", "b5", "b6"], "02:45 stands for the hour 02, 02:30 goes"
    assert kept(Policy(daily=4)) == ["b3", "b4", "b5", "b6"]
    assert kept(Policy(weekly=3)) == ["b3", "b4", "b6"], "ISO weeks: 2025-01-01 is in the week of 2024-12-31"
    assert kept(Policy(monthly=3)) == ["b0", "b4", "b6"]
    assert kept(Policy(yearly=5)) == ["b0", "b6"]


def test_rules_add_up_and_protection_always_keeps() -> None:
    assert kept(Policy(last=1, yearly=2)) == ["b0", "b6"]
    backups = [_b(n, t, protected=(n == 1)) for n, t in enumerate(TIMES)]
    decisions = {d.backup.id: d for d in decide(backups, Policy(last=1))}
    assert decisions["b1"].keep and decisions["b1"].reasons == ["protected"]
    assert [d for d in decisions if decisions[d].keep] == ["b6", "b1"]


def test_only_available_backups_are_candidates() -> None:
    backups = [_b(0, TIMES[0]), _b(1, TIMES[1], status=BackupStatus.ERROR), _b(2, TIMES[2])]
    decisions = decide(backups, Policy(last=1))
    assert [(d.backup.id, d.keep) for d in decisions] == [("b2", True), ("b0", False)]
    assert Policy().empty() and not Policy(daily=1).empty()
