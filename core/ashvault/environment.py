"""The environment the programs ashvault starts (dsmc, ...) get: its own, less the secrets ashvault reads from it."""

from __future__ import annotations

import os

SECRET_VARIABLES = frozenset({"ASHVAULT_PASSPHRASE", "ASHVAULT_NEW_PASSPHRASE"})
"""The encryption passphrases (:data:`ashvault.keys.PASSPHRASE_ENV` and the one ``encryption change-key`` reads)."""


def for_child() -> dict[str, str]:
    """A copy of this process's environment without :data:`SECRET_VARIABLES`, for a program ashvault starts, so a
    passphrase given to ashvault never reaches another program's environment. Never fails."""
    return {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
