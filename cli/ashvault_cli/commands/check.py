"""backup verify (one backup, or --all) | backup rebuild: checks and disaster recovery."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import Any

from ashvault import check, exceptions
from ashvault.catalog import Backup
from ashvault.driver import ProgressFn
from ashvault_cli.common import BytesColumn, Lister, ShowOne, TimeColumn
from ashvault_cli.progress import ProgressBar

VERIFY_ALL_COLUMNS = ("backup_id", "volume_id", "result", "objects_checked", "bytes_read", "problem")


def percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError("give a percentage above 0 and at most 100")
    return value


class VerifyBackup(ShowOne):
    """Check a backup, or with --all every backup, against the hashes its manifest records.

    By default every object is read (a full verify). --sample PERCENT reads that share of each backup's data objects,
    chosen at random (--seed repeats a choice); --metadata-only reads no data: every manifest and block index is read
    and checked, and every object they name must be present with its recorded size (restic check, Benji scrub).
    Sample and metadata-only checks work on ashvault's chunked backups; other formats say "not supported".

    A backup found damaged becomes status error with fail_reason "verify failed: OBJECT: ..." and no longer
    restores; verify it again once repaired: a clean full verify makes it available again.

    With --all (of one --volume or --container if given) the result is one row per backup and the exit status is 4
    when any backup failed, 1 when one could not be checked, 0 otherwise.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("backup", metavar="BACKUP", nargs="?", help="name or id (or --all)")
        parser.add_argument("--all", action="store_true", help="every available backup, and every one a verify "
                            "found damaged")
        parser.add_argument("--volume", metavar="VOLUME", help="with --all: only this volume's backups")
        parser.add_argument("--container", metavar="CONTAINER", help="with --all: only backups in this container")
        depth = parser.add_mutually_exclusive_group()
        depth.add_argument("--sample", metavar="PERCENT", type=percent,
                           help="read only this share of each backup's data objects, chosen at random")
        depth.add_argument("--metadata-only", action="store_true",
                           help="read no data: check manifests and indexes, and that every object is present with "
                           "its recorded size")
        parser.add_argument("--seed", type=int, help="with --sample: the seed of the random choice")
        return parser

    def _mode(self, args: argparse.Namespace) -> check.CheckMode:
        if args.seed is not None and args.sample is None:
            raise exceptions.InvalidInput(reason="--seed goes with --sample")
        if args.metadata_only:
            return check.CheckMode(check.METADATA)
        if args.sample is not None:
            return check.CheckMode(check.SAMPLE, args.sample, args.seed)
        return check.CheckMode()

    def run(self, parsed_args: argparse.Namespace) -> int:
        self._exit = 0
        return super().run(parsed_args) or self._exit

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        mode = self._mode(args)
        if args.all:
            if args.backup:
                raise exceptions.InvalidInput(reason="give a BACKUP or --all, not both")
            return self._all(args, mode)
        if args.backup is None:
            raise exceptions.InvalidInput(reason="give a BACKUP to verify, or --all")
        if args.volume or args.container:
            raise exceptions.InvalidInput(reason="--volume and --container go with --all")
        bar = ProgressBar(f"verify {args.backup}")
        try:
            report = self.api.backup_verify(args.backup, progress=bar, mode=mode)
        finally:
            bar.close()
        return (("backup_id", "result", "objects_checked", "bytes_checked"),
                (report.backup_id, "ok", report.objects_checked, report.bytes_checked))

    def _all(self, args: argparse.Namespace, mode: check.CheckMode) -> tuple[Any, ...]:
        list_formatter(self, args)  # refuse a one-record format before checking anything
        bars: list[ProgressBar] = []

        def progress(b: Backup) -> ProgressFn:
            for old in bars:
                old.close()
            bars[:] = [ProgressBar(f"verify {b.name or b.id}")]
            return bars[0]

        try:
            outcomes = self.api.backup_verify_all(volume=args.volume, container=args.container, mode=mode,
                                                  progress=progress)
        finally:
            for bar in bars:
                bar.close()
        failed = sum(o.result == check.FAILED for o in outcomes)
        errors = sum(o.result == check.ERROR for o in outcomes)
        if failed or errors:
            what = f"{failed} of {len(outcomes)} backups failed verification" if failed else \
                f"{errors} of {len(outcomes)} backups could not be checked"
            self.app.stderr.write(f"ashvault: error: {what}\n")
            self._exit = exceptions.IntegrityError.exit_code if failed else 1
        rows = [(o.backup.id, o.backup.volume_id, o.result, o.objects_checked, BytesColumn(o.bytes_checked),
                 o.problem) for o in outcomes]
        return VERIFY_ALL_COLUMNS, rows

    def produce_output(self, parsed_args: argparse.Namespace, column_names: Sequence[str], data: Any) -> int:
        if not parsed_args.all:
            return super().produce_output(parsed_args, column_names, data)
        emit_list(self, parsed_args, column_names, data)
        return 0


def list_formatter(cmd: Any, args: argparse.Namespace) -> Any:
    """The list formatter of the name ``-f`` chose, for the list ``backup verify --all`` prints from a command
    whose single-backup form shows one record. Raises ``InvalidInput`` for a format that shows one record only."""
    import stevedore

    formatters = stevedore.ExtensionManager("cliff.formatter.list", invoke_on_load=True)
    if args.formatter not in formatters.names():
        both = sorted(set(formatters.names()) & set(cmd._formatter_plugins.names()))
        raise exceptions.InvalidInput(reason=f"-f {args.formatter} shows one record; with --all use "
                                      f"{', '.join(both)}")
    return formatters[args.formatter].obj


def emit_list(cmd: Any, args: argparse.Namespace, column_names: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    columns, selector = cmd._generate_columns_and_selector(args, column_names)
    if selector:
        rows = [list(cmd._compress_iterable(row, selector)) for row in rows]
    list_formatter(cmd, args).emit_list(columns, rows, cmd.app.stdout, args)


class RebuildCatalog(Lister):
    """Re-create the catalog's records from the backend alone, after losing the SQLite file or the database.

    Every backup manifest in the container (chunked backups, encrypted ones with the key configured) gives back its
    backup record, available, with its chain, name, description, size and time; a volume the catalog does not know
    is recorded too, status unavailable with its location unknown: restore its backups to a new volume
    ('backup restore BACKUP NEWNAME'). Records the catalog has are left as they are (skipped), so it can run again.
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--container", help="the container to scan (default: the driver's)")
        parser.add_argument("--driver", help="the driver that reaches the backend (default: backup_driver)")
        parser.add_argument("--dry-run", action="store_true", help="say what would be recorded; record nothing")
        return parser

    def run(self, parsed_args: argparse.Namespace) -> int:
        self._exit = 0
        return super().run(parsed_args) or self._exit

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        rows = self.api.catalog_rebuild(container=args.container, driver=args.driver, dry_run=args.dry_run)
        failed = sum(r.action == "failed" for r in rows)
        if failed:
            self.app.stderr.write(f"ashvault: error: {failed} manifests could not be read; their backups were not "
                                  "recorded\n")
            self._exit = exceptions.IntegrityError.exit_code
        cols = ("kind", "id", "action", "volume_id", "parent_id", "created_at", "detail")
        return cols, [(r.kind, r.id, r.action, r.volume_id, r.parent_id, TimeColumn(r.created_at), r.detail)
                      for r in rows]
