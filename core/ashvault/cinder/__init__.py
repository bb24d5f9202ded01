"""Backups written by OpenStack Cinder's chunked drivers (posix, nfs, glusterfs, swift, google), read by ashvault.

:mod:`layout` parses Cinder's ``_metadata`` and ``_sha256file`` and knows its object names, :mod:`reader` restores
and verifies such a backup (chains included) through any :class:`~ashvault.objectstore.ObjectStore`,
:mod:`handler` is the handler of the ``cinder-chunked/1`` format tag over a driver's store, and :mod:`importer`
adopts backups into the catalog from an exported record or from the backend itself.

An imported record carries the format tag :data:`FORMAT`; its ``service_metadata`` holds the backup's object prefix
and the places of its parents (:func:`ashvault.cinder.handler.chain_of`).
"""

from __future__ import annotations

FORMAT = "cinder-chunked/1"
