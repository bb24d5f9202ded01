#!/usr/bin/env bash
# The one command of the benchmark (issue 3): set up .venv (core, cli, posix plugin), install restic, borg and
# Benji, then run the benchmark and print the table. Arguments go to the benchmark; see --help:
#   benchmarks/run.sh                          2 GiB volume, 3 repetitions, every tool, default cases
#   benchmarks/run.sh --size 2G --reps 1 --big --json benchmarks/work/result.json
# Run as root for the packages and for dropping the page cache between steps.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash benchmarks/install.sh
exec .venv/bin/python -m benchmarks.main "$@"
