"""driver list | show"""

from __future__ import annotations

import argparse
from typing import Any

from ashvault import plugins
from ashvault_cli.common import DictColumn, Lister, ShowOne


class ListDrivers(Lister):
    """List installed backup drivers, with their distribution and why any cannot be used."""

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        rows = []
        for p in plugins.discover(plugins.DRIVERS):
            hint = "" if p.available else f"{p.error} ({plugins.install_hint(p.namespace, p.name)} or its SDK)"
            rows.append((p.name, p.distribution, p.version, p.available, hint))
        return ("name", "distribution", "version", "available", "reason"), rows


class ShowDriver(ShowOne):
    """Show a driver's capabilities and options (secrets masked)."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="driver name")
        parser.add_argument("--check", action="store_true",
                            help="also check the configuration and that the backend answers")
        return parser

    def take_action(self, args: argparse.Namespace) -> tuple[Any, ...]:
        name = plugins.driver_name(args.name)
        cls = plugins.driver_class(name)
        conf = self.app.conf
        plugins.register_driver_options(conf, cls)
        group = conf[cls.option_group]
        options = {}
        for opt in cls.get_driver_options():
            value = getattr(group, opt.dest)
            options[opt.dest] = "****" if opt.secret and value is not None else value
        info = next((p for p in plugins.discover(plugins.DRIVERS) if p.name == name), None)
        cols = ["name", "distribution", "version", "option_group", "capabilities", "options", "default"]
        values: list[Any] = [
            name, info.distribution if info else None, info.version if info else None, cls.option_group,
            DictColumn(cls.capabilities.as_dict()),
            DictColumn({k: v if isinstance(v, (int, float, bool, type(None))) else str(v) for k, v in options.items()}),
            plugins.driver_name(conf.backup_driver) == name,
        ]
        if args.check:
            self.api.manager.driver(name).check_for_setup_error()
            cols.append("check")
            values.append("ok")
        return tuple(cols), tuple(values)
