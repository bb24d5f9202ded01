#!/usr/bin/env bash
# The main job on the embedded default (SQLite catalog, posix backend, no server): make a volume, back it up,
# change it, back it up incrementally, restore to a new volume and check the bytes. Everything lives in a
# temporary state directory that is removed at the end (keep it with KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py
