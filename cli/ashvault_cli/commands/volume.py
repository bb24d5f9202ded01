"""volume create | register | list | show | delete"""

from __future__ import annotations

import argparse
from typing import Any

from ashvault_cli.common import VOLUME_COLUMNS, VOLUME_LIST_COLUMNS, BytesColumn, Lister, ShowOne, volume_row


class CreateVolume(ShowOne):
    """Create an empty sparse file volume under the state directory."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="name of the new volume")
        parser.add_argument("--size", type=float, required=True, metavar="GIB", help="size in GiB")
        parser.add_argument("--description", help="free text")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        vol = self.api.volume_create(args.name, args.size, description=args.description)
        return VOLUME_COLUMNS, volume_row(vol)


class RegisterVolume(ShowOne):
    """Adopt an existing volume: a file, a block device (/dev/loop0) or a URL such as rbd:pool/image."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="name to give the volume")
        parser.add_argument("location", metavar="PATH-OR-URL", help="file, block device or source URL")
        parser.add_argument("--description", help="free text")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        vol = self.api.volume_register(args.name, args.location, description=args.description)
        return VOLUME_COLUMNS, volume_row(vol)


class ListVolumes(Lister):
    """List volumes."""

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        return VOLUME_LIST_COLUMNS, [volume_row(v, VOLUME_LIST_COLUMNS) for v in self.api.volume_list()]


class ShowVolume(ShowOne):
    """Show a volume, with its path or URL, its available backups and the bytes they hold on the backend."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("volume", metavar="VOLUME", help="name or id")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        vol = self.api.volume_get(args.volume)
        usage = self.api.storage_usage({vol.id})
        backups = sum(1 for b in self.api.backup_list(volume=vol.id) if b.id in usage.backups)
        cols = (*VOLUME_COLUMNS, "backups", "backup_stored_bytes")
        return cols, volume_row(vol, cols, backups=backups,
                                backup_stored_bytes=BytesColumn(usage.volumes.get(vol.id, 0)))


class DeleteVolume(ShowOne):
    """Delete a volume. A volume ashvault created is removed from disk; a registered one is only forgotten."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("volume", metavar="VOLUME", help="name or id")
        parser.add_argument("--force", action="store_true", help="delete even while a job uses it")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        vol = self.api.volume_delete(args.volume, force=args.force)
        return ("id", "name", "location", "data_removed"), (vol.id, vol.name, vol.location, vol.managed)
