"""Storage accounting: what each backup, volume and container holds on the backend, true after any deletion.

Backups of a volume share objects (an incremental points at its parents' objects for the blocks that did not
change), so a backup's own size says little once backups come and go. Here every available backup's manifest is
read and each object is counted once: a backup's ``unique_bytes`` are the objects no other backup needs (what
deleting it alone would free, its manifest included), its ``shared_bytes`` those it shares with others, and a
volume's or container's ``stored_bytes`` is every object its backups need, each counted once. With no backup in
error or in progress, a container's total is what the backend holds.

Drivers that keep their data some other way (RBD snapshots) report what they wrote as unique and share nothing.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable

from ashvault.catalog import Backup


@dataclasses.dataclass
class BackupUsage:
    unique_bytes: int = 0
    shared_bytes: int = 0


@dataclasses.dataclass
class Usage:
    backups: dict[str, BackupUsage] = dataclasses.field(default_factory=dict)
    volumes: dict[str, int] = dataclasses.field(default_factory=dict)
    """Volume id -> bytes its backups hold, each object once."""
    containers: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    """(driver, container) -> bytes its backups hold, each object once."""
    backup_counts: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)


Holdings = Callable[[Backup], dict[str, int] | None]
"""A backup's objects and their stored sizes; None when its driver cannot list them."""


def account(records: Iterable[Backup], holdings: Holdings) -> Usage:
    backups = list(records)
    usage = Usage()
    held: dict[str, dict[str, int]] = {}
    users: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(collections.Counter)
    sizes: dict[tuple[str, str], dict[str, int]] = collections.defaultdict(dict)
    volume_objects: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for b in backups:
        where = (b.service or "", b.container or "")
        usage.backup_counts[where] = usage.backup_counts.get(where, 0) + 1
        objects = holdings(b)
        if objects is None:
            # The driver's own count of what it wrote, unique to the backup.
            objects = {f"backup:{b.id}": b.stored_bytes}
        held[b.id] = objects
        users[where].update(objects.keys())
        sizes[where].update(objects)
        volume_objects[b.volume_id].update({f"{where}:{name}": size for name, size in objects.items()})
    for b in backups:
        where = (b.service or "", b.container or "")
        mine = BackupUsage()
        for name, size in held.get(b.id, {}).items():
            if users[where][name] > 1:
                mine.shared_bytes += size
            else:
                mine.unique_bytes += size
        usage.backups[b.id] = mine
    usage.volumes = {vid: sum(objects.values()) for vid, objects in volume_objects.items()}
    usage.containers = {where: sum(objects.values()) for where, objects in sizes.items()}
    return usage
