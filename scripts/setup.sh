#!/usr/bin/env bash
# Create .venv (Python 3.11) and install ashvault's distributions into it, editable.
#   scripts/setup.sh          core, cli and the posix plugin: what the demo needs
#   scripts/setup.sh --all    every distribution in the repository, plus the test tools
set -euo pipefail
cd "$(dirname "$0")/.."

PY=""
for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        PY=$(command -v "$cand"); break
    fi
done
if [ -z "$PY" ]; then
    echo "ashvault needs Python 3.11 (Debian's Ceph bindings are built for it); none found on PATH" >&2
    exit 1
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
LOG=.venv/setup.log
: >"$LOG"
pip_install() {
    if ! .venv/bin/python -m pip install -q --disable-pip-version-check "$@" >>"$LOG" 2>&1; then
        tail -n 30 "$LOG" >&2
        echo "installing failed; the whole log is in $LOG" >&2
        exit 1
    fi
}
pip_install --upgrade pip setuptools wheel

dists=(-e ./core -e ./cli -e ./plugins/posix_nfs_gluster)
if [ "${1:-}" = "--all" ]; then
    for d in plugins/*/; do
        d=${d%/}
        [ "$d" = plugins/posix_nfs_gluster ] && continue
        [ -f "$d/setup.cfg" ] && dists+=(-e "./$d")
    done
    pip_install "${dists[@]}" -r requirements-test.txt
else
    pip_install "${dists[@]}"
fi
# Editable installs leave our own modules uncompiled, and with PYTHONDONTWRITEBYTECODE set (as on CI machines)
# every command would compile them again.
.venv/bin/python -m compileall -q core/ashvault cli/ashvault_cli plugins/*/ashvault_* >/dev/null
