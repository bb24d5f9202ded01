"""The ``ashvault`` application: every command, and the interactive shell when started with no arguments."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from cliff.app import App
from cliff.commandmanager import CommandManager
from oslo_config import cfg

from ashvault import __version__, exceptions
from ashvault.api import API
from ashvault.conf import make_config


class AshvaultApp(App):
    def __init__(self) -> None:
        super().__init__(
            description="ashvault: back up, restore, verify and delete volumes on pluggable backends.",
            version=__version__,
            command_manager=CommandManager("ashvault.cli"),
            deferred_help=True,
        )
        self._api: API | None = None
        self._conf: cfg.ConfigOpts | None = None
        self.last_result = 0
        self._usage_error = False

    def build_option_parser(self, description: str, version: str,
                            argparse_kwargs: dict[str, Any] | None = None) -> argparse.ArgumentParser:
        parser = super().build_option_parser(description, version, argparse_kwargs)
        parser.add_argument("--config-file", action="append", dest="config_files", metavar="FILE",
                            help="configuration file (default /etc/ashvault/ashvault.conf when it exists, or "
                                 "$ASHVAULT_CONFIG_FILE); may be given more than once")
        return parser

    @property
    def conf(self) -> cfg.ConfigOpts:
        if self._conf is None:
            self._conf = make_config([], self.options.config_files)
        return self._conf

    @property
    def api(self) -> API:
        if self._api is None:
            self._api = API(self.conf)
        return self._api

    def interact(self) -> None:
        # cmd2 would replay the process arguments (--config-file ...) as shell commands.
        saved, sys.argv = sys.argv, sys.argv[:1]
        self._ask_passphrase()
        try:
            super().interact()
        finally:
            sys.argv = saved

    def configure_logging(self) -> None:
        """Quiet by default; ``-v`` shows ashvault's own INFO lines, ``-vv`` every library's DEBUG lines too."""
        root = logging.getLogger("")
        console = logging.StreamHandler(self.stderr)
        console.setFormatter(logging.Formatter(self.CONSOLE_MESSAGE_FORMAT))
        verbose = self.options.verbose_level  # 1 unless -v (2, 3, ...) or -q (0)
        if verbose >= 3:
            console.setLevel(logging.DEBUG)
        elif verbose == 2:
            console.setLevel(logging.INFO)
            console.addFilter(lambda r: r.levelno >= logging.WARNING or r.name.split(".")[0].startswith("ashvault"))
        else:
            console.setLevel(logging.WARNING)
        root.addHandler(console)
        # The root logger's level is the lowest any handler shows, never DEBUG for nothing: libraries that see DEBUG
        # enabled do the work of their debug lines (google-auth parsed every request body it sent).
        root.setLevel(console.level)
        if self.options.log_file:
            handler = logging.FileHandler(self.options.log_file)
            handler.setFormatter(logging.Formatter(self.LOG_FILE_MESSAGE_FORMAT))
            root.addHandler(handler)
            root.setLevel(logging.DEBUG)

    def run_subcommand(self, argv: list[str]) -> int:
        self._usage_error = False
        result = super().run_subcommand(argv)
        # In the shell, a command line that does not parse ends in cmd2's own exception, which cliff counts as 1.
        self.last_result = 2 if self._usage_error else result
        return result  # type: ignore[no-any-return]

    def _ask_passphrase(self) -> None:
        """With encryption on and neither a key file nor $ASHVAULT_PASSPHRASE, the shell asks once, unechoed."""
        conf = self.conf
        if conf.encryption == "none" or conf.encryption_key_file:
            return
        from ashvault import keys  # cryptography loads only where encryption is on

        if os.environ.get(keys.PASSPHRASE_ENV):
            return
        try:
            keys.remember_passphrase(getpass.getpass("ashvault: encryption passphrase: "))
        except (EOFError, KeyboardInterrupt):
            self.stderr.write("\n")

    def clean_up(self, cmd: Any, result: int, err: BaseException | None) -> None:
        if isinstance(err, exceptions.AshvaultError):
            self.stderr.write(f"ashvault: error: {err}\n")
        self._usage_error = type(err).__name__ == "Cmd2ArgparseError"

    def run(self, argv: list[str]) -> int:
        try:
            rc = super().run(argv)
            # The interactive shell exits with its last command's status, as sh does.
            return self.last_result if self.interactive_mode else rc
        finally:
            if self._api is not None:
                self._api.close()


def _interrupted(_sig: int, _frame: Any) -> None:
    # A job's lock dies with the process: the next command resolves what was left (creating -> error).
    sys.stderr.write("\nashvault: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        signal.signal(signal.SIGINT, _interrupted)
        signal.signal(signal.SIGTERM, _interrupted)
    try:
        rc = AshvaultApp().run(args)
        sys.stdout.flush()
        return rc
    except BrokenPipeError:
        # The reader went away (ashvault volume list | head -1): end quietly, as cat and ls do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except exceptions.AshvaultError as exc:
        if "--debug" in args:
            traceback.print_exc()
        sys.stderr.write(f"ashvault: error: {exc}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
