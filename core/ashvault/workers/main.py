"""``ashvault-backup``: the backup worker service, like ``cinder-backup``.

It starts ``backup_workers`` worker processes on this host; each takes jobs off the bus and runs them. SIGTERM (or
SIGINT) stops them gracefully: no new jobs, running ones finish within ``graceful_shutdown_timeout``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from ashvault import exceptions
from ashvault.catalog import Catalog
from ashvault.conf import make_config

LOG = logging.getLogger("ashvault.workers")


def open_catalog(conf: cfg.ConfigOpts) -> Catalog:
    state = conf.ashvault_state_path
    os.makedirs(state, mode=0o700, exist_ok=True)
    url = conf.ashvault_database.connection or f"sqlite:///{os.path.join(state, 'ashvault.sqlite')}"
    return Catalog(url, lock_dir=os.path.join(state, "locks"))


def serve(conf: cfg.ConfigOpts) -> int:
    """Run one worker in this process until SIGTERM or SIGINT."""
    from ashvault.workers.worker import Worker

    stop = threading.Event()

    def on_signal(_sig: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    catalog = open_catalog(conf)
    worker = Worker(conf, catalog)
    try:
        worker.start()
        while not stop.wait(0.5):
            pass
        worker.stop()
    finally:
        catalog.close()
    LOG.info("worker %s: stopped", worker.id)
    return 0


def supervise(conf: cfg.ConfigOpts) -> int:
    """Fork ``backup_workers`` workers and pass SIGTERM and SIGINT on to them; returns when they all ended."""
    children: list[int] = []

    def forward(sig: int, _frame: Any) -> None:
        for pid in children:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    for _ in range(conf.backup_workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = serve(conf)
            finally:
                os._exit(code)
        children.append(pid)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code:
            LOG.warning("worker process %d ended with %d", pid, code)
        worst = worst or abs(code)
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ashvault-backup", description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", action="append", dest="config_files", metavar="FILE",
                        help="configuration file (default /etc/ashvault/ashvault.conf or $ASHVAULT_CONFIG_FILE)")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    # One handler, on the root: libraries that add their own would print every line twice.
    ours = logging.getLogger("ashvault")
    ours.setLevel(logging.INFO)
    try:
        conf = make_config([], args.config_files)
        if not conf.ashvault_transport_url:
            raise exceptions.ConfigurationError(reason="ashvault-backup needs ashvault_transport_url (the message bus)")
        open_catalog(conf).close()  # migrates the catalog once, before the workers start
        if conf.backup_workers == 1:
            return serve(conf)
        return supervise(conf)
    except exceptions.AshvaultError as exc:
        sys.stderr.write(f"ashvault-backup: error: {exc}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
