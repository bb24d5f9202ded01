#!/usr/bin/env bash
# Swift 2.38.3 for the swift plugin's tests, in a virtualenv of its own so that Swift's pins never mix with the
# project's. Idempotent: does nothing when the right versions are already there. The servers are started and
# stopped by the tests themselves (ci/swift_aio.py); no Debian package is needed (pyeclib's wheel bundles
# liberasurecode, and the data lives in a plain directory with mount_check = false).
set -euo pipefail
VENV=${ASHVAULT_SWIFT_VENV:-/opt/ashvault-swift-venv}
SWIFT=2.38.3
SWIFTCLIENT=4.11.0

installed() {
    "$VENV/bin/python" - "$SWIFT" "$SWIFTCLIENT" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(not (m.version("swift") == sys.argv[1] and m.version("python-swiftclient") == sys.argv[2]))
PY
}

if installed; then
    echo "swift $SWIFT: already in $VENV"
    exit 0
fi
PY=""
for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import venv, ensurepip' 2>/dev/null; then
        PY=$(command -v "$cand"); break
    fi
done
if [ -z "$PY" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -o DPkg::Lock::Timeout=600 >/dev/null
    apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 python3-venv >/dev/null
    PY=$(command -v python3)
fi
rm -rf "$VENV"
"$PY" -m venv "$VENV"
LOG=$(mktemp)
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check "swift==$SWIFT" \
        "python-swiftclient==$SWIFTCLIENT" >"$LOG" 2>&1; then
    grep -v '^WARNING: Location' "$LOG" | tail -n 30 >&2
    echo "installing swift $SWIFT into $VENV failed" >&2
    exit 1
fi
rm -f "$LOG"
installed
echo "swift $SWIFT: installed in $VENV"
