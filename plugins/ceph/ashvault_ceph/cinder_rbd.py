"""Backups Cinder's ceph driver wrote, found in the backup pool so that the ceph driver can adopt them.

Cinder's layout (``cinder/backup/drivers/ceph.py``): an RBD-to-RBD full backup creates the base image
``volume-<volume>.backup.<backup>`` and ``rbd import-diff`` leaves the snapshot ``backup.<backup>.snap.<time>`` on
it; each incremental is ``export-diff --from-snap <parent's snapshot> | import-diff`` into its parent's base, so a
chain is the backup snapshots of one base, oldest first, each a whole image of the volume at its time. Backups
from before 2019, and those made from a Cinder snapshot, use ``volume-<volume>.backup.base``. A full copy of a
non-RBD volume is an image ``volume-<volume>.backup.<backup>`` with no snapshot.

This is the layout the ceph driver writes itself, so an adopted backup is restored, verified and deleted by the
driver's own code; it only lacks the block checksums ashvault records (Cinder keeps none), so its restore and
verify read the image back without checking it.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from ashvault import exceptions
from ashvault.driver import BackupInfo
from ashvault_ceph.client import rbd
from ashvault_ceph.rbd_source import SNAP_RE, backup_snaps

BASE_RE = re.compile(r"^volume-(?P<volume>.+)\.backup\.(?P<tag>[^.]+)$")
ORIGIN = "cinder"


def _when(snap: str | None) -> datetime.datetime | None:
    found = SNAP_RE.match(snap or "")
    try:
        return datetime.datetime.fromtimestamp(float(found.group(2)), datetime.UTC) if found else None
    except ValueError:
        return None


def _record_base(rec: dict[str, Any] | None) -> str | None:
    """The base image a Cinder record names in its ``service_metadata`` (``{"base": ...}``)."""
    text = (rec or {}).get("service_metadata") or ""
    try:
        doc = json.loads(text) if text.startswith("{") else {}
    except ValueError:
        return None
    base = doc.get("base") if isinstance(doc, dict) else None
    return base if isinstance(base, str) and base else None


def _locate(ioctx: Any, pool: str, backup_id: str, base_hint: str | None,
            volume_id: str | None) -> tuple[str, list[str]]:
    """(base image, its backup snapshots oldest first) holding ``backup_id``; only that volume's images are
    searched when its id is known."""
    names = [n for n in rbd.RBD().list(ioctx) if BASE_RE.match(n)
             and (not volume_id or BASE_RE.match(n).group("volume") == volume_id)]  # type: ignore[union-attr]
    own = [n for n in names if BASE_RE.match(n).group("tag") == backup_id]  # type: ignore[union-attr]
    candidates = ([base_hint] if base_hint else []) + own + [n for n in names if n not in own and n != base_hint]
    for name in candidates:
        try:
            img = rbd.Image(ioctx, name, read_only=True)
        except rbd.ImageNotFound:
            continue
        try:
            snaps = backup_snaps(img)
        finally:
            img.close()
        if any(SNAP_RE.match(s).group(1) == backup_id for s in snaps):  # type: ignore[union-attr]
            return name, snaps
        if name in own and not snaps:
            return name, []
    raise exceptions.InvalidBackup(
        reason=f"Cinder backup {backup_id}: pool {pool} holds neither an image volume-<volume>.backup.{backup_id} "
        f"nor a snapshot backup.{backup_id}.snap.<time>"
    )


def _size(ioctx: Any, base: str, snap: str | None) -> int:
    img = rbd.Image(ioctx, base, snapshot=snap, read_only=True)
    try:
        return int(img.size())
    finally:
        img.close()


def find(ioctx: Any, pool: str, *, records: list[dict[str, Any]], backup_id: str | None) -> list[BackupInfo]:
    """The backups named (by record or id) and the earlier backups of their chains, parents first."""
    wanted = [(r["id"], r) for r in records] + ([(backup_id, None)] if backup_id else [])
    if not wanted:
        raise exceptions.InvalidInput(reason="name a Cinder backup: a record or a backup id")
    by_id = {bid: rec for bid, rec in wanted}
    out: dict[str, BackupInfo] = {}
    for bid, rec in wanted:
        base, snaps = _locate(ioctx, pool, bid, _record_base(rec), (rec or {}).get("volume_id"))
        volume = BASE_RE.match(base).group("volume")  # type: ignore[union-attr]
        if not snaps:
            chain: list[tuple[str, str | None]] = [(bid, None)]
        else:
            ids = [SNAP_RE.match(s).group(1) for s in snaps]  # type: ignore[union-attr]
            last = max(i for i, x in enumerate(ids) if x == bid)
            chain = list(zip(ids[: last + 1], snaps[: last + 1], strict=True))
        parent = None
        for cid, snap in chain:
            if cid not in out:
                r = by_id.get(cid) or {}
                meta = {"base": base, "snap": snap, "source": None, "source_snap": None, "index": None,
                        "origin": ORIGIN}
                out[cid] = BackupInfo(
                    id=cid, volume_id=volume, name=r.get("display_name"), description=r.get("display_description"),
                    container=pool, parent_id=parent, service_metadata=json.dumps(meta, sort_keys=True),
                    size=_size(ioctx, base, snap), created_at=_when(snap),
                )
            parent = cid
    return list(out.values())
