"""A job: a plain, serialisable request the manager runs, wherever the dispatcher sends it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from ashvault.driver import ProgressFn


class Kind:
    BACKUP = "backup"
    RESTORE = "restore"
    VERIFY = "verify"
    DELETE = "delete"
    IMPORT = "import"
    ALL = (BACKUP, RESTORE, VERIFY, DELETE, IMPORT)


@dataclasses.dataclass(frozen=True)
class Job:
    """One operation on one backup record: the record holds the rest.

    ``options`` by kind (JSON values only): backup ``volume_claimed`` (the job set the volume's status, so it resets
    it); restore ``volume_is_new``; delete ``allowed`` (statuses a delete may start from) and ``wait`` (seconds to
    wait for a running job of the backup to stop); import ``driver_info``; verify ``check`` (its depth,
    :class:`ashvault.check.CheckMode`) and ``run`` (the ``backup verify --all`` run it belongs to).
    """

    kind: str
    backup_id: str
    volume_id: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**json.loads(text))


@dataclasses.dataclass
class Observers:
    """What the caller of a job watches it with, in this process; never part of the job itself."""

    progress: ProgressFn | None = None
    on_wait: Callable[[], None] | None = None
    """Called once when the job starts waiting for an operation slot."""
