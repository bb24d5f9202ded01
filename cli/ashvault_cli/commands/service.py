"""service list"""

from __future__ import annotations

import argparse
from typing import Any

from ashvault_cli.common import Lister, TimeColumn

COLUMNS = ("host", "binary", "status", "last_heartbeat", "jobs_running", "pid", "id")


class ListServices(Lister):
    """List the backup workers (ashvault-backup) the catalog knows, with their heartbeat: up, down or stopped."""

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        rows = [(s["host"], s["binary"], s["status"], TimeColumn(s["heartbeat_at"]), s["jobs_running"], s["pid"],
                 s["id"]) for s in self.api.service_list()]
        return COLUMNS, rows
