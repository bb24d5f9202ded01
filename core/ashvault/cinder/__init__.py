"""Backups written by OpenStack Cinder's chunked drivers (posix, nfs, glusterfs, swift, google), read by ashvault.

:mod:`layout` parses Cinder's ``_metadata`` and ``_sha256file`` and knows its object names, :mod:`reader` restores
and verifies such a backup (chains included) through any :class:`~ashvault.objectstore.ObjectStore`, and
:mod:`importer` adopts backups into the catalog from an exported record or from the backend itself.

An imported record is told apart by its ``service_metadata``: a JSON object whose ``format`` is :data:`FORMAT`
(see :func:`marker`), where a native record holds its object prefix.
"""

from __future__ import annotations

import json
from typing import Any

FORMAT = "cinder-chunked/1"


def marker(service_metadata: str | None) -> dict[str, Any] | None:
    """The stored description of an imported Cinder chunked backup, or ``None`` for any other record.

    Stop-gap routing until the catalog has a per-backup format column: the chunked driver and the API ask this
    (and only this) whether a record is Cinder's.
    """
    if not service_metadata or not service_metadata.startswith("{"):
        return None
    try:
        doc = json.loads(service_metadata)
    except ValueError:
        return None
    if isinstance(doc, dict) and doc.get("format") == FORMAT:
        return doc
    return None
