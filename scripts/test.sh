#!/usr/bin/env bash
# Install everything the tests need on this machine (system packages, services, the virtualenv), then run the
# whole test suite. Needs root for the system packages.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --all
for script in scripts/services/*.sh; do
    echo "== $script"
    bash "$script"
done
for script in plugins/*/ci/install.sh; do
    [ -f "$script" ] || continue
    echo "== $script"
    bash "$script"
done

if [ -f benchmarks/install.sh ]; then
    echo "== benchmarks/install.sh"
    bash benchmarks/install.sh
fi

echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
.venv/bin/python -m pytest "$@"
