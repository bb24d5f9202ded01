"""Checks of a backup record brought in from elsewhere (``backup record import``), before anything is written.

A record is untrusted text: its ``id`` becomes a lock file's name, its ``volume_id`` and ``service_metadata`` object
names on the backend, its numbers and times columns that every listing reads back. :func:`parse_record` checks every
field and returns the values to record; any bad one raises :class:`~ashvault.exceptions.InvalidInput` naming the
field, in one line, and nothing else escapes.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

from ashvault import exceptions
from ashvault.catalog.models import BackupStatus
from ashvault.objectstore import check_name

MAX_ID = 36
"""The catalog's id columns hold 36 characters: a UUID."""
MAX_NAME = 255
MAX_TEXT = 4096
MAX_SIZE = 1 << 56
"""64 PiB: far above any volume, far below what a 64-bit column or an offset computation overflows at."""
MAX_COUNT = 1 << 48
MAX_DRIVER_INFO = 64 * 1024

_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
_MIN_TIME = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MAX_TIME = datetime.datetime(9000, 1, 1, tzinfo=datetime.UTC)


def _bad(field: str, why: str) -> exceptions.InvalidInput:
    return exceptions.InvalidInput(reason=f"the backup record is not valid: {field} {why}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_id(value: Any, field: str) -> str:
    """A UUID or a safe name: letters, digits, ``_``, ``-``, ``.``, no ``..``, at most 36 characters."""
    if not isinstance(value, str):
        raise _bad(field, f"must be a string, not {_shown(value)}")
    if not value or len(value) > MAX_ID or ".." in value or not _ID.match(value):
        raise _bad(field, f"must be a UUID or a name of letters, digits, '_', '-', '.' (no '..', at most {MAX_ID}), "
                   f"not {_shown(value)}")
    return value


def _optional_id(value: Any, field: str) -> str | None:
    return None if value is None else check_id(value, field)


def _text(value: Any, field: str, *, limit: int = MAX_TEXT, single_line: bool = True) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(field, f"must be a string, not {_shown(value)}")
    if len(value) > limit:
        raise _bad(field, f"is longer than {limit} characters")
    if not (value if single_line else value.replace("\n", "").replace("\t", "")).isprintable():
        raise _bad(field, "holds control characters")
    return value


def _count(value: Any, field: str, *, limit: int, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(field, f"must be a whole number, not {_shown(value)}")
    if not 0 <= value <= limit:
        raise _bad(field, f"must be between 0 and {limit}, not {_shown(value)}")
    return value


def _time(value: Any, field: str, now: datetime.datetime) -> datetime.datetime:
    if value is None or value == "":
        return now
    if not isinstance(value, str) or len(value) > 64:
        raise _bad(field, f"must be an ISO 8601 time, not {_shown(value)}")
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise _bad(field, f"must be an ISO 8601 time, not {_shown(value)}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    try:
        parsed = parsed.astimezone(datetime.UTC)
    except OverflowError:
        raise _bad(field, f"is out of range: {_shown(value)}") from None
    if not _MIN_TIME <= parsed < _MAX_TIME:
        raise _bad(field, f"is out of range: {_shown(value)}")
    return parsed


def _driver_info(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad("driver_info", f"must be an object, not {_shown(value)}")
    if len(repr(value)) > MAX_DRIVER_INFO:
        raise _bad("driver_info", f"is larger than {MAX_DRIVER_INFO} bytes")
    return value


def _check_floats(value: Any) -> None:
    """JSON allows NaN and Infinity; a record holds neither."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad("a value", "is not a finite number")


def parse_record(doc: Any, now: datetime.datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record's catalog fields and its ``driver_info``. Raises ``InvalidInput`` naming the first bad field.

    The driver name, format and status are the importer's to set: ``format`` and ``status`` are only checked for
    type here (the format against the driver by the caller), ``service`` is replaced by the importing driver.
    """
    if not isinstance(doc, dict):
        raise exceptions.InvalidInput(reason="the backup record is not valid: it is not a JSON object")
    for field in ("id", "volume_id", "size"):
        if field not in doc:
            raise _bad(field, "is missing")
    for value in doc.values():
        _check_floats(value)
    status = doc.get("status")
    if status is not None and status not in BackupStatus.ALL:
        raise _bad("status", f"must be one of {', '.join(BackupStatus.ALL)}, not {_shown(status)}")
    fields: dict[str, Any] = {
        "id": check_id(doc["id"], "id"),
        "volume_id": check_id(doc["volume_id"], "volume_id"),
        "parent_id": _optional_id(doc.get("parent_id"), "parent_id"),
        "name": _text(doc.get("name"), "name", limit=MAX_NAME),
        "description": _text(doc.get("description"), "description", single_line=False),
        "container": _text(doc.get("container"), "container", limit=MAX_NAME),
        "service": _text(doc.get("service"), "service", limit=MAX_NAME),
        "service_metadata": _text(doc.get("service_metadata"), "service_metadata", limit=1024),
        "format": _text(doc.get("format"), "format", limit=64),
        "availability_zone": _text(doc.get("availability_zone"), "availability_zone", limit=MAX_NAME),
        "size": _count(doc["size"], "size", limit=MAX_SIZE),
        "object_count": _count(doc.get("object_count"), "object_count", limit=MAX_COUNT, default=0),
        "stored_bytes": _count(doc.get("stored_bytes"), "stored_bytes", limit=MAX_SIZE, default=0),
        "created_at": _time(doc.get("created_at"), "created_at", now),
        "data_timestamp": _time(doc.get("data_timestamp"), "data_timestamp", now),
        "manifest_hash": _manifest_hash(doc.get("manifest_hash")),
    }
    if fields["parent_id"] == fields["id"]:
        raise _bad("parent_id", "is the backup's own id")
    return fields, _driver_info(doc.get("driver_info"))


def _manifest_hash(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _HASH.match(value):
        raise _bad("manifest_hash", f"must be 64 lowercase hexadecimal digits, not {_shown(value)}")
    return value


def check_location(record: Any, *, chunked: bool) -> None:
    """The container, and for a ``chunked/1`` backup its object prefix (``service_metadata``), are safe object
    names: they become paths on the backend. Raises ``InvalidInput``."""
    if record.container is not None:
        check_name(record.container, what="container name in the backup record")
    if chunked and record.service_metadata is not None:
        check_name(record.service_metadata, what="service_metadata (object prefix) in the backup record")
