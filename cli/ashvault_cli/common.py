"""What every command shares: error reporting as one line with the error's exit code, and record formatting."""

from __future__ import annotations

import argparse
from typing import Any

from cliff import columns, command, lister, show

from ashvault import exceptions
from ashvault.api import API
from ashvault.catalog import Backup, Volume

GiB = 1 << 30


class Base:
    """Mixin: an :class:`~ashvault.exceptions.AshvaultError` becomes one line on stderr and its exit code."""

    app: Any

    @property
    def api(self) -> API:
        return self.app.api  # type: ignore[no-any-return]

    def get_epilog(self) -> str:
        # cliff names the distribution of a plugin's command by scanning every installed one (50 ms a command);
        # our own commands need no such line.
        if type(self).__module__.split(".")[0] == "ashvault_cli":
            return getattr(self, "_epilog", None) or ""
        return super().get_epilog()  # type: ignore[misc,no-any-return]

    def run(self, parsed_args: argparse.Namespace) -> int:
        try:
            return super().run(parsed_args)  # type: ignore[misc,no-any-return]
        except exceptions.AshvaultError as exc:
            self.app.stderr.write(f"ashvault: error: {exc}\n")
            return exc.exit_code
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            self.app.stderr.write(f"ashvault: error: {exc.strerror or exc}{where}\n")
            return 1


class Command(Base, command.Command):
    pass


class ShowOne(Base, show.ShowOne):
    pass


class Lister(Base, lister.Lister):
    pass


class DictColumn(columns.FormattableColumn):  # type: ignore[type-arg]
    """A dict shown as ``key=value`` lines in tables and as an object in json and yaml."""

    def human_readable(self) -> str:
        return "\n".join(f"{k}={v}" for k, v in self._value.items())

    def machine_readable(self) -> dict[str, Any]:
        return dict(self._value)


def gib(size: int) -> float:
    return round(size / GiB, 3)


BACKUP_COLUMNS = ("id", "name", "description", "volume_id", "status", "fail_reason", "size", "size_bytes",
                  "is_incremental", "parent_id", "container", "object_count", "stored_bytes", "read_bytes",
                  "service", "availability_zone", "created_at", "updated_at", "data_timestamp")
BACKUP_LIST_COLUMNS = ("id", "name", "volume_id", "status", "size", "is_incremental", "stored_bytes",
                       "created_at")
VOLUME_COLUMNS = ("id", "name", "description", "status", "size", "size_bytes", "location", "source", "managed",
                  "created_at", "updated_at")
VOLUME_LIST_COLUMNS = ("id", "name", "status", "size", "location")


def _when(value: Any) -> Any:
    return value.strftime("%Y-%m-%dT%H:%M:%S") if hasattr(value, "strftime") else value


def backup_row(b: Backup, columns: tuple[str, ...] = BACKUP_COLUMNS) -> tuple[Any, ...]:
    values = {
        "size": gib(b.size), "size_bytes": b.size, "is_incremental": b.is_incremental,
        "created_at": _when(b.created_at), "updated_at": _when(b.updated_at), "data_timestamp": _when(b.data_timestamp),
    }
    return tuple(values[c] if c in values else getattr(b, c) for c in columns)


def volume_row(v: Volume, columns: tuple[str, ...] = VOLUME_COLUMNS) -> tuple[Any, ...]:
    values = {"size": gib(v.size), "size_bytes": v.size, "created_at": _when(v.created_at),
              "updated_at": _when(v.updated_at)}
    return tuple(values[c] if c in values else getattr(v, c) for c in columns)
