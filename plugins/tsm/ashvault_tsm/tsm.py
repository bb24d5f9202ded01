"""The ``tsm`` driver: whole volumes to IBM Spectrum Protect (TSM) through ``dsmc``, as Cinder's TSM driver did.

A block device is backed up as an image (``dsmc backup image``), a file volume as a file (``dsmc selective``).
TSM files an object under its path and keeps versions per path, so each backup goes through its own hard link,
``<backup_path>/<volume_prefix>-<backup id>``, made for the call and removed afterwards: every backup is then its
own TSM object with one version, and deleting it expires exactly that object. The link is a hard link because a
file backup of a symbolic link stores the link, not the data (Cinder's symlinks since 2018 did exactly that).

The driver is Tier 1 only: it moves ``file`` volumes (regular files and block devices) natively, in the format
``tsm/1``, and offers no object store, so the core refuses volumes of any other scheme. What TSM cannot do, declared
in :attr:`TSMBackupDriver.capabilities`: incrementals (an object's versions are whole copies, and
``-mode=incremental`` of an image needs a mounted file system), and verifying a backup without restoring it (the
client can only list what the server holds).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from typing import Any

from oslo_config import cfg

from ashvault import exceptions
from ashvault.driver import BackupDriver, BackupInfo, BackupResult, Capabilities, JobContext
from ashvault.sources import VolumeReader, VolumeWriter
from ashvault_tsm import opts
from ashvault_tsm.dsmc import Dsmc


def volume_mode(path: str) -> str:
    """``image`` for a block device, ``file`` for a regular file (after following links)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise exceptions.InvalidVolume(reason=f"cannot stat {path}: {exc.strerror}") from exc
    if stat.S_ISBLK(mode):
        return "image"
    if stat.S_ISREG(mode):
        return "file"
    raise exceptions.InvalidVolume(reason=f"{path} is neither a block device nor a regular file")


class TSMBackupDriver(BackupDriver):
    name = "tsm"
    option_group = opts.GROUP
    capabilities = Capabilities(incremental=False, force_delete=True, verify=False, native_sources=frozenset({"file"}))
    native_format = "tsm/1"

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self.dsmc = Dsmc.from_options(self.options)

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return opts.tsm_opts

    def check_for_setup_error(self) -> None:
        link_dir = self.options.backup_path
        if link_dir and not os.path.isdir(link_dir):
            raise exceptions.DriverSetupError(reason=f"[backup_tsm] backup_path {link_dir} is not a directory")
        try:
            self.dsmc.session()
        except exceptions.DriverSetupError:
            raise
        except exceptions.AshvaultError as exc:
            raise exceptions.DriverSetupError(reason=str(exc)) from exc

    # the object a backup is filed under

    def _object_path(self, backup_id: str, volume_path: str) -> str:
        directory = self.options.backup_path or os.path.dirname(volume_path)
        return os.path.join(directory, f"{self.options.volume_prefix}-{backup_id}")

    def _pending(self, backup_id: str) -> str:
        return os.path.join(self.conf.ashvault_state_path, "tsm", f"{backup_id}.json")

    def _meta(self, backup: BackupInfo) -> dict[str, str] | None:
        """Where ``backup`` lives on the server: its record's service metadata once it finished, else the note
        written before its dsmc call (a backup that was cancelled or failed); None when it never got that far."""
        text = backup.service_metadata
        if not text:
            try:
                with open(self._pending(backup.id)) as f:
                    text = f.read()
            except FileNotFoundError:
                return None
        return self._parse_meta(backup.id, text)

    def _stored(self, backup: BackupInfo) -> dict[str, str]:
        meta = self._meta(backup)
        if meta is None:
            raise exceptions.InvalidBackup(reason=f"backup {backup.id} records no TSM object")
        return meta

    @staticmethod
    def _parse_meta(backup_id: str, text: str | dict[str, Any]) -> dict[str, str]:
        try:
            meta = json.loads(text) if isinstance(text, str) else dict(text)
            mode, path = meta["backup_mode"], meta["backup_path"]
        except (ValueError, KeyError, TypeError) as exc:
            raise exceptions.InvalidBackup(reason=f"backup {backup_id}: its TSM metadata is unreadable") from exc
        if mode not in ("image", "file") or not isinstance(path, str) or not os.path.isabs(path):
            raise exceptions.InvalidBackup(reason=f"backup {backup_id}: bad TSM metadata {mode!r} {path!r}")
        return {"backup_mode": mode, "backup_path": path}

    def _link(self, volume_path: str, link: str) -> None:
        try:
            os.link(volume_path, link)
        except FileExistsError:
            if os.path.samestat(os.stat(link), os.stat(volume_path)):
                return
            raise exceptions.InvalidVolume(reason=f"{link} exists and is not {volume_path}")
        except OSError as exc:
            hint = (" (backup_path must be on the volume's file system; for block devices a directory of /dev)"
                    if exc.errno == errno.EXDEV else "")
            raise exceptions.InvalidVolume(
                reason=f"cannot hard-link {volume_path} as {link}: {exc.strerror}{hint}") from exc

    # operations

    def backup(self, backup: BackupInfo, source: VolumeReader, ctx: JobContext) -> BackupResult:
        if backup.parent is not None or backup.parent_id:
            raise exceptions.NotSupported(
                reason="driver 'tsm' makes no incremental backups: TSM keeps whole versions of each object")
        mode = volume_mode(source.location)
        volume_path = os.path.realpath(source.location)
        link = self._object_path(backup.id, volume_path)
        meta = json.dumps({"backup_mode": mode, "backup_path": link})
        ctx.check()
        os.makedirs(os.path.dirname(self._pending(backup.id)), exist_ok=True)
        with open(self._pending(backup.id), "w") as f:
            f.write(meta)
        ctx.progress(0, source.size)
        self._link(volume_path, link)
        try:
            ctx.check()
            out = self.dsmc.backup(mode, link, ctx)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
        ctx.check()
        ctx.progress(source.size, source.size)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._pending(backup.id))
        return BackupResult(container=backup.container or self.options.servername or "tsm", service_metadata=meta,
                            size=source.size, object_count=1, stored_bytes=out.transferred(),
                            read_bytes=source.size)

    def restore(self, backup: BackupInfo, target: VolumeWriter, ctx: JobContext, *, volume_is_new: bool) -> None:
        meta = self._stored(backup)
        mode, path = meta["backup_mode"], meta["backup_path"]
        target_mode = volume_mode(target.location)
        dest = os.path.realpath(target.location)
        if mode == "file" and target_mode == "image":
            raise exceptions.NotSupported(
                reason=f"backup {backup.id} is of a file volume, and dsmc restores files only to files, not into "
                       "block devices")
        ctx.check()
        if not self.dsmc.query(mode, path):
            raise exceptions.InvalidBackup(reason=f"backup {backup.id}: the TSM server holds no {mode} object {path}")
        ctx.check()
        ctx.progress(0, backup.size)
        size_before = target.size
        self.dsmc.restore(mode, path, dest, ctx, backup_id=backup.id)
        if mode == "file" and os.path.getsize(dest) < size_before:
            # dsmc gives the file the backup's size; a larger target keeps its size, the excess reading as zeros.
            os.truncate(dest, size_before)
        target.flush()
        ctx.progress(backup.size, backup.size)

    def delete_backup(self, backup: BackupInfo, ctx: JobContext) -> None:
        meta = self._meta(backup)
        if meta is None:
            return  # it failed before making a link or calling dsmc: nothing to remove
        mode, path = meta["backup_mode"], meta["backup_path"]
        if self.dsmc.query(mode, path):
            self.dsmc.delete(mode, path)
        if os.path.basename(path).endswith(backup.id):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # the hard link of a backup whose process was killed
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._pending(backup.id))

    def export_record(self, backup: BackupInfo) -> dict[str, Any]:
        return self._stored(backup)

    def import_record(self, backup: BackupInfo, driver_info: dict[str, Any]) -> None:
        meta = self._parse_meta(backup.id, driver_info or backup.service_metadata or "")
        mode, path = meta["backup_mode"], meta["backup_path"]
        if not os.path.basename(path).endswith(f"-{backup.id}"):
            raise exceptions.InvalidBackup(reason=f"backup {backup.id}: the record names TSM object {path}, "
                                                  "which belongs to another backup")
        if not self.dsmc.query(mode, path):
            raise exceptions.InvalidBackup(reason=f"backup {backup.id}: the TSM server holds no {mode} object {path}")
