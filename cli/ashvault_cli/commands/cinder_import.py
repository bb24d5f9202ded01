"""backup cinder import: adopt backups written by OpenStack Cinder's chunked and ceph drivers into the catalog."""

from __future__ import annotations

import argparse
from typing import Any

from ashvault_cli.common import Lister, backup_row

COLUMNS = ("id", "name", "volume_id", "parent_id", "status", "format", "size", "size_bytes", "container",
           "object_count", "created_at")


class ImportCinderBackup(Lister):
    """Import backups made by Cinder's posix, nfs, glusterfs, swift or google driver, with their chains.

    Name the backup by its exported record (the backup_url of 'cinder backup-export'; give the records of its
    parents too, or import them first, unless the parents are found beside it), by --backup-id (found in
    --container, the driver's default container, or Cinder's posix directory for that id), or by --container and
    --prefix (the backup's object prefix, Cinder's service_metadata). Parents are imported first. Every object is
    checked to be present before anything is recorded; nothing is half imported.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("records", metavar="BACKUP_URL", nargs="*",
                            help="a record exported by 'cinder backup-export' (base64)")
        parser.add_argument("--backup-id", help="the Cinder backup's id, to find it on the backend")
        parser.add_argument("--container", help="the container (posix: directory under the backup path) holding it")
        parser.add_argument("--prefix", help="the backup's object prefix (Cinder's service_metadata)")
        parser.add_argument("--verify", action="store_true",
                            help="also read every object and check its md5 and block hashes before recording "
                            "anything (chunked formats)")
        parser.add_argument("--driver", help="the ashvault driver that reaches the backend (a name or Cinder's "
                            "class path; default: the record's service, then backup_driver)")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        imported = self.api.backup_import_cinder(records=args.records, backup_id=args.backup_id,
                                                 container=args.container, prefix=args.prefix, driver=args.driver,
                                                 verify=args.verify)
        return COLUMNS, [backup_row(b, COLUMNS) for b in imported]
