"""encryption change-key"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING, Any

from ashvault import exceptions
from ashvault_cli.common import ShowOne

if TYPE_CHECKING:
    from ashvault import keys

NEW_PASSPHRASE_ENV = "ASHVAULT_NEW_PASSPHRASE"


def _new_key(args: argparse.Namespace) -> keys.UserKey:
    from ashvault import keys

    if args.new_key_file:
        conf = argparse.Namespace(encryption_key_file=args.new_key_file)
        return keys.user_key_from_conf(conf)  # type: ignore[arg-type]
    passphrase = os.environ.get(NEW_PASSPHRASE_ENV)
    if passphrase is None and sys.stdin.isatty():
        passphrase = getpass.getpass("ashvault: new encryption passphrase: ")
        if getpass.getpass("ashvault: the new passphrase again: ") != passphrase:
            raise exceptions.InvalidInput(reason="the two passphrases differ; nothing was changed")
    if not passphrase:
        raise exceptions.InvalidInput(
            reason=f"no new key: give --new-key-file, or the new passphrase in ${NEW_PASSPHRASE_ENV} (or at the prompt)"
        )
    return keys.UserKey("passphrase", passphrase.encode(), f"${NEW_PASSPHRASE_ENV}")


class ChangeKey(ShowOne):
    """Wrap a container's data key with a new passphrase or key file; only its key object is rewritten.

    The current key is found as for any command (encryption_key_file, $ASHVAULT_PASSPHRASE, the shell's prompt).
    """

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--container", help="container (default: the driver's default container)")
        parser.add_argument("--driver", help="backup driver (default: backup_driver)")
        parser.add_argument("--new-key-file", metavar="FILE",
                            help=f"the new key file; without it, the new passphrase from ${NEW_PASSPHRASE_ENV} or "
                                 "typed twice at a prompt")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        driver = self.api.manager.driver(args.driver)
        if not driver.capabilities.object_store:
            raise exceptions.NotSupported(reason=f"driver '{driver.name}' offers no object store, so nothing it "
                                                 "stores is encrypted by ashvault")
        store = driver.store
        from ashvault.wrappers.encryption import EncryptedObjectStore

        assert isinstance(store, EncryptedObjectStore)  # ashvault.wrappers.wrap puts it outermost
        container = args.container or driver.default_container or "volumebackups"
        new = _new_key(args)
        rewritten = store.change_key(container, new)
        return ("container", "key_objects_rewritten", "new_key"), (container, ", ".join(rewritten), new.kind)
