"""The ``ashvault`` command's entry point: loads the application with the garbage collector paused."""

from __future__ import annotations

import gc


def main() -> int:
    # Loading the shell creates many thousand objects (oslo.config, cliff, stevedore). Collecting while
    # they load is wasted work, and freezing them keeps the collections during a long backup from walking them.
    gc.disable()
    try:
        from ashvault_cli.shell import main as run
    finally:
        gc.freeze()
        gc.enable()
    return run()
