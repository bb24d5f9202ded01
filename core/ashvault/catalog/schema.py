"""The catalog's schema as the code reads and writes it, derived from the record dataclasses.

Each record class maps to one table; its columns are the class's fields, in order, each with the Python type it holds
(``str``, ``int``, ``bool`` or ``datetime``) and whether it may be NULL (an ``X | None`` field). The alembic
migrations build the database; ``tests/test_catalog_schema.py`` migrates a SQLite and a PostgreSQL catalog and fails
when their columns and these disagree. The newest revision is read from the migration scripts, so a new migration
needs no number typed anywhere else.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import os
import types
import typing
from typing import Any, NamedTuple

from ashvault import exceptions
from ashvault.catalog.models import Backup, JobRecord, Service, Volume

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")
VERSIONS = os.path.join(MIGRATIONS, "versions")
_TYPES = (str, int, bool, datetime.datetime)


class Column(NamedTuple):
    name: str
    type: type
    nullable: bool


class Table:
    """A table's name, the record class a row is read into, and its columns in the class's field order."""

    def __init__(self, name: str, record: type, columns: tuple[Column, ...]) -> None:
        self.name = name
        self.record = record
        self.columns = columns
        self.names = tuple(c.name for c in columns)
        self.by_name = {c.name: c for c in columns}

    def of(self, kind: type) -> frozenset[str]:
        """The names of the columns holding ``kind``."""
        return frozenset(c.name for c in self.columns if c.type is kind)


def _table(name: str, record: type) -> Table:
    fields = dataclasses.fields(record)
    hints: dict[str, Any] = {f.name: f.type for f in fields}
    if any(isinstance(hint, str) for hint in hints.values()):
        hints = typing.get_type_hints(record)
    columns = []
    for field in fields:
        hint = hints[field.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) != 1 or kinds[0] not in _TYPES:
            raise TypeError(f"{record.__name__}.{field.name}: a catalog column holds one of str, int, bool, datetime")
        columns.append(Column(field.name, kinds[0], nullable=len(kinds) < len(args)))
    return Table(name, record, tuple(columns))


VOLUMES = _table("volumes", Volume)
BACKUPS = _table("backups", Backup)
JOBS = _table("jobs", JobRecord)
SERVICES = _table("services", Service)
TABLES: dict[type, Table] = {Volume: VOLUMES, Backup: BACKUPS, JobRecord: JOBS, Service: SERVICES}


@functools.cache
def head(versions: str = VERSIONS) -> str:
    """The newest migration's revision, read from the scripts' ``revision`` and ``down_revision`` lines.

    The scripts are read, not imported: they import SQLAlchemy, which a catalog already at this revision never needs.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for entry in sorted(os.listdir(versions)):
        if not entry.endswith(".py") or entry.startswith("_"):
            continue
        found: dict[str, list[str]] = {}
        with open(os.path.join(versions, entry), encoding="utf-8") as script:
            for line in script:
                if line.startswith("def "):
                    break
                target, equals, value = line.partition("=")
                name = target.partition(":")[0].strip()
                if equals and name in ("revision", "down_revision"):
                    found[name] = _strings(value)
        revision = found.get("revision", [])
        if len(revision) != 1:
            raise exceptions.ConfigurationError(reason=f"catalog migration {entry} names no revision")
        revisions.update(revision)
        parents.update(found.get("down_revision", []))
    heads = sorted(revisions - parents)
    if len(heads) != 1:
        raise exceptions.ConfigurationError(
            reason=f"the catalog's migrations must end in one revision, not {', '.join(heads) or 'none'}"
        )
    return heads[0]


def _strings(value: str) -> list[str]:
    """The quoted strings in an assignment's value: ``None``, ``"a"`` or ``("a", "b")``."""
    return value.partition("#")[0].replace("'", '"').split('"')[1::2]
