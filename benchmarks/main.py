"""``python -m benchmarks.main``: the benchmark of issue 3. ``benchmarks/run.sh`` installs everything, then runs it.

Exit status: 0 when every selected tool that is installed ran every step and every restore verified; 1 when a
step failed or a restore differed; 2 on bad arguments. Missing tools are reported, not failures (use
``--require`` to make them failures).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import shlex
import sys
from typing import Any, NoReturn

from benchmarks import cases, measure, report, tools
from benchmarks.volumes import GiB, MiB

DEFAULT_CASES = ("compare", "metadata", "workers", "sparse")


def size_arg(text: str) -> int:
    """A size in MiB, or with a K/M/G suffix (binary units)."""
    units = {"K": 1 << 10, "M": MiB, "G": GiB}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    try:
        n = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t) * MiB
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 2G, 512M, 64)") from None
    if n < 4 * MiB or int(n) % (64 * 1024):
        raise argparse.ArgumentTypeError(f"size {text!r} must be at least 4 MiB and a multiple of 64 KiB")
    return int(n)


def csv_arg(choices: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}; got {text!r}")
        return items
    return parse


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad arguments: one line on stderr, exit status 2."""
        self.exit(2, f"benchmarks: error: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=size_arg, default=2 * GiB, help="volume size (default 2G)")
    p.add_argument("--reps", type=int, default=3, help="repetitions; medians are reported (default 3)")
    p.add_argument("--tools", type=csv_arg(tuple(tools.ALL)), default=list(tools.ALL),
                   help=f"comma-separated, from {','.join(tools.ALL)} (cp is always included)")
    p.add_argument("--cases", type=csv_arg(tuple(cases.CASES)), default=list(DEFAULT_CASES),
                   help=f"comma-separated, from {','.join(cases.CASES)} (default {','.join(DEFAULT_CASES)})")
    p.add_argument("--big", action="store_true", help="add the 'big' case (peak RSS on a --big-size volume)")
    p.add_argument("--big-size", type=size_arg, default=16 * GiB, help="volume of the big case (default 16G)")
    p.add_argument("--sparse-size", type=size_arg, default=64 * GiB, help="sparse file of the sparse case (64G)")
    p.add_argument("--sparse-data", type=size_arg, default=GiB, help="data in it, and dense file size (1G)")
    p.add_argument("--sparse-source", action="store_true", help="zero runs of the volume as holes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "work"))
    p.add_argument("--no-drop-caches", action="store_true", help="keep the page cache between steps")
    p.add_argument("--json", metavar="PATH", help="also write every record and the summary as JSON ('-': stdout)")
    p.add_argument("--require", action="store_true", help="a selected tool that is not installed is a failure")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.reps < 1:
        parser().error("--reps must be at least 1")
    if args.sparse_data % (4 * MiB) or args.sparse_data > args.sparse_size:
        parser().error("--sparse-data must be a multiple of 4 MiB and at most --sparse-size")
    names = ["cp", *[t for t in args.tools if t != "cp"]]
    selected = list(dict.fromkeys([*args.cases, *(["big"] if args.big else [])]))
    os.makedirs(args.workdir, exist_ok=True)
    cases.clear(args.workdir)
    drop = not args.no_drop_caches and measure.can_drop_caches()
    log = functools.partial(print, file=sys.stderr, flush=True)
    b = cases.Bench(args.workdir, args.size, args.reps, names, seed=args.seed, sparse_source=args.sparse_source,
                    drop=drop, log=log)
    runners = {**cases.CASES,
               "sparse": functools.partial(cases.sparse, big=args.sparse_size, data=args.sparse_data),
               "big": functools.partial(cases.big, size=args.big_size)}
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["benchmarks/run.sh", *(argv if argv is not None else sys.argv[1:])]),
        "machine": report.machine(), "size": args.size, "reps": args.reps, "seed": args.seed,
        "sparse_source": args.sparse_source, "drop_caches": drop, "cases": selected,
    }
    failed = False
    for name in selected:
        log(f"== case {name}")
        try:
            runners[name](b)
        except (measure.StepFailed, OSError) as exc:
            failed = True
            b.add(case=name, tool="ashvault", op=name, error=str(exc)[:300])
    info.update(b.info)
    print(report.render(b.records, info), end="")
    if args.json:
        doc = {"info": info, "records": b.records, "summary": report.summary(b.records),
               "targets": report.targets(b.records, args.size)}
        text = json.dumps(doc, indent=1, default=str)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    failed = failed or any("error" in r for r in b.records)
    failed = failed or any(r.get("verified") is False for r in b.records)
    missing = [n for n, t in info.get("tools", {}).items() if t["unavailable"]]
    return 1 if failed or (args.require and missing) else 0


if __name__ == "__main__":
    sys.exit(main())
