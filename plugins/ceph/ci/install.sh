#!/usr/bin/env bash
# Install what the ceph plugin's tests need on a Debian 12 machine, idempotently (0.x s when all is present):
# the Ceph daemons and CLI (a single-node test cluster is started by tests/conftest.py), and Debian's rados/rbd
# bindings, linked into /work/main/.venv (or $VENV) because PyPI has none. Needs root for apt-get.
set -euo pipefail
cd "$(dirname "$0")/../../.."
VENV=${VENV:-$PWD/.venv}
PKGS=(ceph-mon ceph-osd ceph-mgr ceph-common python3-rados python3-rbd)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -o DPkg::Lock::Timeout=600 >/dev/null
    # --no-install-recommends: ceph-base would otherwise pull in ceph-mds and an NTP daemon.
    apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "ceph: no virtualenv at $VENV (run scripts/setup.sh first)" >&2
    exit 1
fi
SP=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
TAG=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
for m in rados rbd; do
    so=/usr/lib/python3/dist-packages/$m$TAG
    if [ ! -f "$so" ]; then
        echo "ceph: $so is missing: python3-$m is built for Debian's Python, not $("$VENV/bin/python" -V)" >&2
        exit 1
    fi
    ln -sfn "$so" "$SP/"
done
"$VENV/bin/python" -c 'import rados, rbd' || { echo "ceph: the rados/rbd bindings do not import in $VENV" >&2; exit 1; }
echo "ceph: $(ceph --version | cut -d' ' -f1-3), bindings linked into $VENV"
