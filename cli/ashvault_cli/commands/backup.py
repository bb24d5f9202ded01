"""backup create | list | show | restore | delete | verify | record export | record import"""

from __future__ import annotations

import argparse
from typing import Any

from ashvault_cli.common import (
    BACKUP_COLUMNS,
    BACKUP_LIST_COLUMNS,
    VOLUME_COLUMNS,
    Lister,
    ShowOne,
    backup_row,
    volume_row,
)
from ashvault_cli.progress import ProgressBar


def add_wait(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--wait", dest="wait", action="store_true", default=True,
                       help="wait for the job to end, with a progress bar (the default)")
    group.add_argument("--no-wait", dest="wait", action="store_false",
                       help="return once the job is sent to the backup workers; 'backup show' follows it")


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
                                       progress=bar, on_wait=bar.waiting, wait=args.wait)
        finally:
            bar.close()
        return BACKUP_COLUMNS, backup_row(b)


class ListBackups(Lister):
    """List backups."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--volume", help="only this volume's backups (name or id)")
        parser.add_argument("--status", help="only backups in this status")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        rows = self.api.backup_list(volume=args.volume, status=args.status)
        return BACKUP_LIST_COLUMNS, [backup_row(b, BACKUP_LIST_COLUMNS) for b in rows]


class ShowBackup(ShowOne):
    """Show a backup."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backup", metavar="BACKUP", help="name or id")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        b = self.api.backup_get(args.backup)
        return (*BACKUP_COLUMNS, "progress"), (*backup_row(b), self.api.backup_progress(b.id))


class RestoreBackup(ShowOne):
    """Restore a backup to a new volume, or over an existing one with --force."""

    overwrite_without_force = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backup", metavar="BACKUP", help="backup name or id")
        parser.add_argument("volume", metavar="VOLUME", nargs="?",
                            help="volume to overwrite (name or id); without it a new volume is created")
        parser.add_argument("--volume", dest="volume_opt", metavar="VOLUME", help="same as the VOLUME argument")
        parser.add_argument("--name", help="name of the new volume (default restore_backup_<id>)")
        parser.add_argument("--force", action="store_true", help="overwrite an existing volume")
        add_wait(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        volume = args.volume or args.volume_opt
        bar = ProgressBar(f"restore {args.backup}")
        try:
            backup, vol = self.api.backup_restore(args.backup, volume, name=args.name,
                                                  force=args.force or self.overwrite_without_force,
                                                  progress=bar, on_wait=bar.waiting, wait=args.wait)
        finally:
            bar.close()
        cols = ("backup_id", "volume_id", "volume_name", "volume_location", "volume_created", "size")
        return cols, (backup.id, vol.id, vol.name, vol.location, volume is None, volume_row(vol, ("size",))[0])


class DeleteBackup(Lister):
    """Delete backups. Any backup of a chain may go: the others stay restorable."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backups", metavar="BACKUP", nargs="+", help="backup names or ids")
        parser.add_argument("--force", action="store_true",
                            help="also delete a backup that is being created (it stops at its next chunk)")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        rows = [(b.id, b.name, b.status) for b in (self.api.backup_delete(x, force=args.force)
                                                    for x in args.backups)]
        return ("id", "name", "status"), rows


class VerifyBackup(ShowOne):
    """Read every object a backup needs and check it against its hash."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backup", metavar="BACKUP", help="name or id")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        bar = ProgressBar(f"verify {args.backup}")
        try:
            report = self.api.backup_verify(args.backup, progress=bar)
        finally:
            bar.close()
        return (("backup_id", "result", "objects_checked", "bytes_checked"),
                (report.backup_id, "ok", report.objects_checked, report.bytes_checked))


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


__all__ = ["VOLUME_COLUMNS"]
