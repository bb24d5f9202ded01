"""Cinder's own spelling, as aliases: create, backup-create, backup-restore, backup-delete, backup-list,
backup-show, backup-update, backup-reset-state, backup-export, backup-import. Flags and arguments follow
python-cinderclient."""

from __future__ import annotations

import argparse
from typing import Any

from ashvault_cli.commands import backup, volume


class CinderCreate(volume.CreateVolume):
    """Create a volume (cinder create --display-name NAME SIZE)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super(volume.CreateVolume, self).get_parser(prog_name)
        parser.add_argument("size", metavar="SIZE", type=float, help="size in GiB")
        parser.add_argument("--display-name", "--name", dest="name", help="volume name")
        parser.add_argument("--display-description", "--description", dest="description", help="free text")
        return parser


class CinderBackupCreate(backup.CreateBackup):
    """Back up a volume (cinder backup-create [--container C] [--display-name N] [--incremental] VOLUME)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super(backup.CreateBackup, self).get_parser(prog_name)
        parser.add_argument("volume", metavar="VOLUME", help="volume name or id")
        parser.add_argument("--container", help="backend container")
        parser.add_argument("--display-name", "--name", dest="name", help="backup name")
        parser.add_argument("--display-description", "--description", dest="description", help="free text")
        parser.add_argument("--incremental", action="store_true", help="incremental backup")
        parser.add_argument("--force", action="store_true", help="back up a volume that is not available")
        return parser


class CinderBackupRestore(backup.RestoreBackup):
    """Restore a backup (cinder backup-restore [--volume-id VOLUME] BACKUP).

    As in Cinder, naming a volume with --volume-id overwrites it; without one a new volume is created.
    """

    overwrite_without_force = True
    creates_named_volume = False

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super(backup.RestoreBackup, self).get_parser(prog_name)
        parser.add_argument("backup", metavar="BACKUP", help="backup name or id")
        parser.add_argument("--volume-id", "--volume", dest="volume", metavar="VOLUME",
                            help="volume to restore into (overwritten)")
        parser.add_argument("--name", help="name of the new volume when none is given")
        parser.set_defaults(volume_opt=None, force=False)
        return parser


class CinderBackupDelete(backup.DeleteBackup):
    """Delete backups (cinder backup-delete [--force] BACKUP...)."""


class CinderBackupList(backup.ListBackups):
    """List backups (cinder backup-list [--volume-id VOLUME] [--status S] [--name N] [--marker B] [--limit N])."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super(backup.ListBackups, self).get_parser(prog_name)
        backup.add_list_filters(parser, "--volume-id", "--volume")
        return parser


class CinderBackupShow(backup.ShowBackup):
    """Show a backup (cinder backup-show BACKUP)."""


class CinderBackupUpdate(backup.SetBackup):
    """Rename or describe a backup (cinder backup-update [--name N] [--description D] [--metadata K=V] BACKUP)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super(backup.SetBackup, self).get_parser(prog_name)
        parser.add_argument("backup", metavar="BACKUP", help="name or id")
        parser.add_argument("--name", "--display-name", dest="name", help="new name")
        parser.add_argument("--description", "--display-description", dest="description", help="new description")
        parser.add_argument("--metadata", "--property", metavar="KEY=VALUE", action=backup.KeyValue,
                            dest="properties", help="set a property (repeat for several)")
        parser.set_defaults(protected=None, state=None)
        return parser


class CinderBackupResetState(backup.ResetBackupState):
    """Reset backups' status (cinder backup-reset-state [--state available|error] BACKUP [BACKUP ...])."""


class CinderBackupExport(backup.ExportRecord):
    """Export a backup's record (cinder backup-export BACKUP)."""


class CinderBackupImport(backup.ImportRecord):
    """Import a backup record (cinder backup-import BACKUP_SERVICE BACKUP_URL)."""


__all__ = ["Any"]
