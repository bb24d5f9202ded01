"""backup create | list | show | restore | delete | set | unset | reset-state | prune | usage |
record export | record import"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ashvault import exceptions, retention
from ashvault.catalog import Backup, BackupStatus
from ashvault_cli.common import (
    BACKUP_COLUMNS,
    BACKUP_LIST_COLUMNS,
    BACKUP_LONG_COLUMNS,
    VOLUME_COLUMNS,
    BytesColumn,
    Lister,
    ShowOne,
    SizeColumn,
    TimeColumn,
    backup_row,
)
from ashvault_cli.progress import ProgressBar


class KeyValue(argparse.Action):
    """``--property key=value``, repeatable, gathered into a dict (osc-lib's KeyValueAction)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        key, eq, value = str(values).partition("=")
        if not eq or not key:
            parser.error(f"{option_string} expects KEY=VALUE, not '{values}'")
        found = dict(getattr(namespace, self.dest) or {})
        found[key] = value
        setattr(namespace, self.dest, found)


def add_wait(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--wait", dest="wait", action="store_true", default=True,
                       help="wait for the job to end, with a progress bar (the default)")
    group.add_argument("--no-wait", dest="wait", action="store_false",
                       help="return at once with the backup's id: the job goes to the backup workers or, without them, "
                            "runs in a detached process (log under the state path); 'backup show' follows it")


class CreateBackup(ShowOne):
    """Back up a volume, in full or incrementally on top of its latest available backup."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("volume", metavar="VOLUME", help="volume name or id")
        parser.add_argument("--name", help="backup name")
        parser.add_argument("--description", help="free text")
        parser.add_argument("--container", help="backend container (default: the driver's)")
        parser.add_argument("--incremental", action="store_true",
                            help="store only what changed since the volume's latest available backup")
        parser.add_argument("--force", action="store_true",
                            help="back up even when the volume is not available (for example in error)")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        bar = ProgressBar(f"backup {args.volume}")
        try:
            b = self.api.backup_create(args.volume, name=args.name, description=args.description,
                                       container=args.container, incremental=args.incremental, force=args.force,
                                       progress=bar, on_wait=bar.waiting, wait=getattr(args, "wait", True))
        finally:
            bar.close()
        return BACKUP_COLUMNS, backup_row(b)


def add_list_filters(parser: argparse.ArgumentParser, *volume_flags: str) -> None:
    parser.add_argument(*(volume_flags or ("--volume",)), dest="volume", metavar="VOLUME",
                        help="only this volume's backups (name or id)")
    parser.add_argument("--status", help="only backups in this status")
    parser.add_argument("--name", help="only backups with this name")
    parser.add_argument("--marker", metavar="BACKUP", help="start after this backup (name or id): the last of "
                        "the previous page")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N backups")
    parser.add_argument("--long", action="store_true",
                        help="more columns: description, container, driver, protection, properties, and the bytes "
                             "each backup holds alone and shares with others")


class ListBackups(Lister):
    """List backups, oldest first. Sizes are whole GiB in tables (exact bytes with -f json), times are UTC."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        add_list_filters(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        rows = self.api.backup_page(volume=args.volume, status=args.status, name=args.name, marker=args.marker,
                                    limit=args.limit)
        if not args.long:
            return BACKUP_LIST_COLUMNS, [backup_row(b, BACKUP_LIST_COLUMNS) for b in rows]
        usage = self.api.storage_usage({b.volume_id for b in rows}).backups if rows else {}
        out = []
        for b in rows:
            mine = usage.get(b.id)
            out.append(backup_row(b, BACKUP_LONG_COLUMNS, unique_bytes=BytesColumn(mine and mine.unique_bytes),
                                  shared_bytes=BytesColumn(mine and mine.shared_bytes)))
        return BACKUP_LONG_COLUMNS, out


class ShowBackup(ShowOne):
    """Show a backup, with the bytes it holds alone and those it shares with other backups."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backup", metavar="BACKUP", help="name or id")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        b = self.api.backup_get(args.backup)
        mine = self.api.storage_usage({b.volume_id}).backups.get(b.id) if b.status == BackupStatus.AVAILABLE else None
        cols = (*BACKUP_COLUMNS, "unique_bytes", "shared_bytes", "progress")
        return cols, backup_row(b, cols, unique_bytes=BytesColumn(mine and mine.unique_bytes),
                                shared_bytes=BytesColumn(mine and mine.shared_bytes),
                                progress=self.api.backup_progress(b.id))


class RestoreBackup(ShowOne):
    """Restore a backup to a new volume, or over an existing one with --force.

    As in python-openstackclient, VOLUME names an existing volume (name or id) or, when none has that name, the
    volume to create.
    """

    overwrite_without_force = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backup", metavar="BACKUP", help="backup name or id")
        parser.add_argument("volume", metavar="VOLUME", nargs="?",
                            help="volume to overwrite (name or id, with --force), or the name of a new volume; "
                                 "without it a new volume is created")
        parser.add_argument("--volume", dest="volume_opt", metavar="VOLUME", help="same as the VOLUME argument")
        parser.add_argument("--name", help="name of the new volume (default restore_backup_<id>)")
        parser.add_argument("--force", action="store_true",
                            help="overwrite an existing volume. The backup's manifest and the presence of each of "
                                 "its objects are checked first; an object found corrupt only when it is read "
                                 "still stops the restore with the volume partly overwritten")
        add_wait(parser)
        return parser

    creates_named_volume = True
    """VOLUME that names no volume is the new volume's name (OSC); cinderclient's --volume must exist."""

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        volume = args.volume or args.volume_opt
        name = args.name
        if volume is not None and self.creates_named_volume and name is None:
            try:
                self.api.catalog.get_volume(volume)
            except exceptions.VolumeNotFound:
                volume, name = None, volume
        bar = ProgressBar(f"restore {args.backup}")
        try:
            backup, vol = self.api.backup_restore(args.backup, volume, name=name,
                                                  force=args.force or self.overwrite_without_force,
                                                  progress=bar, on_wait=bar.waiting, wait=getattr(args, "wait", True))
        finally:
            bar.close()
        cols = ("backup_id", "volume_id", "volume_name", "volume_location", "volume_created", "size")
        return cols, (backup.id, vol.id, vol.name, vol.location, volume is None, SizeColumn(vol.size))


class DeleteBackup(Lister):
    """Delete backups. Any backup of a chain may go: the others stay restorable.

    Every backup named is tried; when several are named, each failure is reported on its own line and the command
    ends with "N of M backups failed to delete" and exit status 1, as python-openstackclient does.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backups", metavar="BACKUP", nargs="+", help="backup names or ids")
        parser.add_argument("--force", action="store_true",
                            help="also delete a protected backup, or one being created (it stops at its next chunk)")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        return each_backup(self, args.backups, "delete", lambda ident: self.api.backup_delete(ident, force=args.force))


class ExportRecord(ShowOne):
    """Export a backup's record, to import it on another site (Cinder's backup-export)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backup", metavar="BACKUP", help="name or id")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        rec = self.api.backup_export(args.backup)
        return ("backup_service", "backup_url"), (rec["backup_service"], rec["backup_url"])


class ImportRecord(ShowOne):
    """Import a backup record exported elsewhere; its data must be on this site's backend."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backup_service", metavar="BACKUP_SERVICE", help="driver name from the export")
        parser.add_argument("backup_url", metavar="BACKUP_URL", help="the encoded record from the export")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        return BACKUP_COLUMNS, backup_row(self.api.backup_import(args.backup_service, args.backup_url))


class SetBackup(ShowOne):
    """Change a backup's name, description, properties or protection (python-openstackclient's backup set)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backup", metavar="BACKUP", help="name or id")
        parser.add_argument("--name", help="new name")
        parser.add_argument("--description", help="new description")
        parser.add_argument("--property", metavar="KEY=VALUE", action=KeyValue, dest="properties",
                            help="set a property (repeat for several)")
        protect = parser.add_mutually_exclusive_group()
        protect.add_argument("--protect", action="store_true", default=None, dest="protected",
                             help="keep the backup from backup prune and from backup delete without --force")
        protect.add_argument("--no-protect", action="store_false", dest="protected", help="lift the protection")
        parser.add_argument("--state", choices=[BackupStatus.AVAILABLE, BackupStatus.ERROR],
                            help="reset the status, as backup reset-state does (administrators' repair)")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        b = None
        if args.state:
            b = self.api.backup_reset_state(args.backup, args.state)
        if any(v is not None for v in (args.name, args.description, args.properties, args.protected)) or b is None:
            b = self.api.backup_update(b.id if b else args.backup, name=args.name, description=args.description,
                                       properties=args.properties, protected=args.protected)
        return BACKUP_COLUMNS, backup_row(b)


class UnsetBackup(ShowOne):
    """Remove properties from a backup (python-openstackclient's backup unset)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backup", metavar="BACKUP", help="name or id")
        parser.add_argument("--property", metavar="KEY", action="append", dest="unset", required=True,
                            help="property to remove (repeat for several)")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        return BACKUP_COLUMNS, backup_row(self.api.backup_update(args.backup, unset=args.unset))


class ResetBackupState(Lister):
    """Set a stuck backup's status to available or error (Cinder's backup-reset-state; an administrator's repair).

    Refused while a job runs the backup; available only when the backend holds the whole backup.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backups", metavar="BACKUP", nargs="+", help="backup names or ids")
        parser.add_argument("--state", default=BackupStatus.AVAILABLE,
                            choices=[BackupStatus.AVAILABLE, BackupStatus.ERROR],
                            help="the status to set (default available)")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        return each_backup(self, args.backups, "reset", lambda ident: self.api.backup_reset_state(ident, args.state))


PERIOD_NAMES = {"hourly": "hours", "daily": "days", "weekly": "weeks", "monthly": "months", "yearly": "years"}


class PruneBackups(Lister):
    """Delete each volume's backups that no retention rule keeps (restic's and borg's --keep-* rules).

    --keep-last N keeps the newest N; --keep-hourly/daily/weekly/monthly/yearly N keep the newest backup of each of
    the N newest hours, days, ISO weeks, months or years that have one (UTC). A backup any rule keeps stays;
    protected backups always stay; only available backups are considered. Every other backup of a chain stays
    restorable.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--volume", metavar="VOLUME", help="only this volume (name or id); default every volume")
        for rule in retention.RULES:
            what = "the newest N backups" if rule == "last" else f"the newest backup of N {PERIOD_NAMES[rule]}"
            parser.add_argument(f"--keep-{rule}", dest=rule, type=int, default=0, metavar="N", help=f"keep {what}")
        parser.add_argument("--dry-run", action="store_true", help="print what would be deleted; delete nothing")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        values = [getattr(args, rule) for rule in retention.RULES]
        if any(v < 0 for v in values):
            raise exceptions.InvalidInput(reason="--keep-* values must be 0 or more")
        policy = retention.Policy(*values)
        result = self.api.backup_prune(policy, volume=args.volume, dry_run=args.dry_run)
        rows, failed = [], 0
        for decision, error in result:
            b = decision.backup
            if decision.keep:
                action = "keep"
            elif args.dry_run:
                action = "would delete"
            elif error:
                action = "failed"
                failed += 1
                self.app.stderr.write(f"ashvault: error: {error}\n")
            else:
                action = "deleted"
            rows.append((b.id, b.name, b.volume_id, TimeColumn(retention.taken_at(b)), action,
                         ", ".join(decision.reasons)))
        if failed:
            raise exceptions.AshvaultError(f"{failed} of {sum(not d.keep for d, _ in result)} backups failed to "
                                           "delete")
        return ("id", "name", "volume_id", "taken_at", "action", "kept_by"), rows


class BackupUsage(Lister):
    """What the backups hold on their backends, per container and per volume, each object counted once."""

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        usage = self.api.storage_usage()
        names = {v.id: v.name for v in self.api.volume_list()}
        counts: dict[str, int] = {}
        for b in self.api.backup_list():
            if b.id in usage.backups:
                counts[b.volume_id] = counts.get(b.volume_id, 0) + 1
        rows: list[tuple[Any, ...]] = []
        for (service, container), total in sorted(usage.containers.items()):
            rows.append(("container", f"{service}:{container}", usage.backup_counts[(service, container)],
                         BytesColumn(total)))
        for vid, total in sorted(usage.volumes.items()):
            rows.append(("volume", names.get(vid) or vid, counts.get(vid, 0), BytesColumn(total)))
        return ("scope", "name", "backups", "stored_bytes"), rows


__all__ = ["VOLUME_COLUMNS"]


def each_backup(cmd: Any, idents: list[str], verb: str, act: Callable[[str], Backup]) -> tuple[Any, ...]:
    """Act on every backup named, as python-openstackclient does: with several, each failure is one line on stderr
    and the command ends with "N of M backups failed to VERB"; with one, its error is the command's."""
    rows, failed = [], 0
    for ident in idents:
        try:
            b = act(ident)
        except exceptions.AshvaultError as exc:
            if len(idents) == 1:
                raise
            failed += 1
            cmd.app.stderr.write(f"ashvault: error: {exc}\n")
            continue
        rows.append((b.id, b.name, b.status))
    if failed:
        raise exceptions.AshvaultError(f"{failed} of {len(idents)} backups failed to {verb}")
    return ("id", "name", "status"), rows
