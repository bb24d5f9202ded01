"""What every command shares: error reporting as one line with the error's exit code, and record formatting."""

from __future__ import annotations

import argparse
import datetime
import math
import traceback
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
        except BrokenPipeError:
            raise
        except exceptions.AshvaultError as exc:
            self._traceback()
            self.app.stderr.write(f"ashvault: error: {exc}\n")
            return exc.exit_code
        except OSError as exc:
            self._traceback()
            where = f": {exc.filename}" if exc.filename else ""
            self.app.stderr.write(f"ashvault: error: {exc.strerror or exc}{where}\n")
            return 1

    def _traceback(self) -> None:
        if getattr(self.app.options, "debug", False):
            self.app.stderr.write(traceback.format_exc())


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


class SizeColumn(columns.FormattableColumn):  # type: ignore[type-arg]
    """A size in bytes: whole GiB (rounded up) in tables, as python-openstackclient prints them; bytes in json."""

    def human_readable(self) -> str:
        return str(math.ceil(self._value / GiB)) if self._value is not None else ""

    def machine_readable(self) -> Any:
        return self._value


class BytesColumn(columns.FormattableColumn):  # type: ignore[type-arg]
    """A byte count: with a binary unit in tables, exact in json."""

    def human_readable(self) -> str:
        if self._value is None:
            return ""
        n = float(self._value)
        for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
            if n < 1024 or unit == "TiB":
                return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
            n /= 1024
        return ""

    def machine_readable(self) -> Any:
        return self._value


class TimeColumn(columns.FormattableColumn):  # type: ignore[type-arg]
    """A time, always UTC and marked so: ``2026-12-04 15:30:05 UTC`` in tables, ISO 8601 with ``+00:00`` in json."""

    def _utc(self) -> datetime.datetime | None:
        v = self._value
        if not isinstance(v, datetime.datetime):
            return None
        return (v if v.tzinfo else v.replace(tzinfo=datetime.UTC)).astimezone(datetime.UTC)

    def human_readable(self) -> str:
        t = self._utc()
        return t.strftime("%Y-%m-%d %H:%M:%S UTC") if t else ""

    def machine_readable(self) -> Any:
        t = self._utc()
        return t.isoformat(timespec="seconds") if t else None


def gib(size: int) -> float:
    return round(size / GiB, 3)


BACKUP_COLUMNS = ("id", "name", "description", "volume_id", "status", "fail_reason", "size", "size_bytes",
                  "is_incremental", "parent_id", "container", "object_count", "stored_bytes", "read_bytes",
                  "service", "availability_zone", "protected", "properties", "created_at", "updated_at",
                  "data_timestamp")
BACKUP_LIST_COLUMNS = ("id", "name", "volume_id", "status", "size", "parent_id", "created_at")
BACKUP_LONG_COLUMNS = ("id", "name", "description", "volume_id", "status", "size", "parent_id", "container",
                       "service", "protected", "properties", "unique_bytes", "shared_bytes", "created_at")
VOLUME_COLUMNS = ("id", "name", "description", "status", "size", "size_bytes", "location", "source", "managed",
                  "created_at", "updated_at")
VOLUME_LIST_COLUMNS = ("id", "name", "status", "size", "location")


def backup_row(b: Backup, columns: tuple[str, ...] = BACKUP_COLUMNS, **extra: Any) -> tuple[Any, ...]:
    values = {
        "size": SizeColumn(b.size), "size_bytes": b.size, "is_incremental": b.is_incremental,
        "stored_bytes": BytesColumn(b.stored_bytes), "read_bytes": BytesColumn(b.read_bytes),
        "properties": DictColumn(b.props), "created_at": TimeColumn(b.created_at),
        "updated_at": TimeColumn(b.updated_at), "data_timestamp": TimeColumn(b.data_timestamp), **extra,
    }
    return tuple(values[c] if c in values else getattr(b, c) for c in columns)


def volume_row(v: Volume, columns: tuple[str, ...] = VOLUME_COLUMNS, **extra: Any) -> tuple[Any, ...]:
    values = {"size": SizeColumn(v.size), "size_bytes": v.size, "created_at": TimeColumn(v.created_at),
              "updated_at": TimeColumn(v.updated_at), **extra}
    return tuple(values[c] if c in values else getattr(v, c) for c in columns)
