"""The catalog's statements, built from the schema's tables in the paramstyle of the database's DB-API driver.

Every value becomes a named parameter, written ``:p0`` for ``sqlite3`` and ``%(p0)s`` for ``psycopg``, and every
column named in a statement is checked against its table, so a statement is written once for both databases.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from ashvault.catalog.schema import Column, Table

Where = Mapping[str, Any]
"""Columns and the values they must hold, all of them: a list, tuple or set of values means any one of them."""

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
"""How SQLAlchemy's ``DateTime`` (the migrations' column type) is stored in SQLite, in UTC here."""


class Statement:
    """One statement's text and the parameters it names."""

    def __init__(self, dialect: Dialect, table: Table) -> None:
        self._dialect = dialect
        self._table = table
        self.params: dict[str, Any] = {}
        self.text = ""

    def _value(self, column: str, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = self._dialect.adapt(self._table.by_name[column], value)
        return self._dialect.mark % name

    def _columns(self, names: Iterable[str]) -> list[str]:
        names = list(names)
        unknown = set(names) - set(self._table.names)
        if unknown:
            raise TypeError(f"no such {self._table.name} column: {', '.join(sorted(unknown))}")
        return names

    def where(self, where: Where) -> str:
        terms = []
        for column in self._columns(where):
            value = where[column]
            if isinstance(value, list | tuple | set | frozenset):
                values = list(value)
                marks = ", ".join(self._value(column, v) for v in values)
                terms.append(f"{column} IN ({marks})" if values else "1 = 0")
            else:
                terms.append(f"{column} = {self._value(column, value)}")
        return f" WHERE {' AND '.join(terms)}" if terms else ""


class Dialect:
    """Statements for one kind of database: ``sqlite`` or ``postgresql``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.mark = "%%(%s)s" if kind == "postgresql" else ":%s"

    def adapt(self, column: Column, value: Any) -> Any:
        """``value`` as the driver takes it for ``column``: SQLite keeps times as UTC text."""
        if self.kind == "sqlite" and column.type is datetime.datetime and isinstance(value, datetime.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(datetime.UTC).replace(tzinfo=None)
            return value.strftime(SQLITE_TIME)
        return value

    def select(self, table: Table, where: Where, *, columns: Iterable[str] | None = None,
               order: Iterable[str] = (), limit: int | None = None) -> Statement:
        """``order`` names columns, each optionally followed by `` DESC``."""
        st = Statement(self, table)
        names = st._columns(table.names if columns is None else columns)
        st.text = f"SELECT {', '.join(names)} FROM {table.name}" + st.where(where)
        keys = list(order)
        if keys:
            st._columns(key.removesuffix(" DESC") for key in keys)
            st.text += f" ORDER BY {', '.join(keys)}"
        if limit is not None:
            st.text += f" LIMIT {int(limit)}"
        return st

    def insert(self, table: Table, values: Mapping[str, Any]) -> Statement:
        st = Statement(self, table)
        names = st._columns(values)
        marks = ", ".join(st._value(name, values[name]) for name in names)
        st.text = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"
        return st

    def update(self, table: Table, values: Mapping[str, Any], where: Where) -> Statement:
        st = Statement(self, table)
        sets = ", ".join(f"{name} = {st._value(name, values[name])}" for name in st._columns(values))
        st.text = f"UPDATE {table.name} SET {sets}" + st.where(where)
        return st

    def delete(self, table: Table, where: Where) -> Statement:
        st = Statement(self, table)
        st.text = f"DELETE FROM {table.name}" + st.where(where)
        return st
