#!/usr/bin/env bash
# Install what the nfs and glusterfs drivers' tests need on a Debian 12 machine, idempotently (well under a second
# when all is present): GlusterFS 10 (server and FUSE client), nfs-ganesha with its VFS FSAL, rpcbind and libnfs
# (the tests' userspace NFSv3 client, ci/nfs_fuse.py, reaches the server through libnfs and FUSE), and fusepy in
# the project's virtualenv. The servers are started and stopped by the tests (ci/servers.py). Needs root.
set -euo pipefail
cd "$(dirname "$0")/../../.."
VENV=${VENV:-$PWD/.venv}
PKGS=(glusterfs-server glusterfs-client nfs-ganesha nfs-ganesha-vfs rpcbind libnfs13 libnfs-utils libfuse2 fuse
      iproute2)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -o DPkg::Lock::Timeout=600 >/dev/null
    apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "posix: no virtualenv at $VENV (run scripts/setup.sh first)" >&2
    exit 1
fi
if ! "$VENV/bin/python" -c 'import fuse' 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "fusepy==3.0.1"
fi
"$VENV/bin/python" -c 'import fuse' || { echo "posix: fusepy does not import in $VENV" >&2; exit 1; }
echo "posix: $(glusterd --version | head -n1), ganesha $(dpkg-query -W -f='${Version}' nfs-ganesha)," \
     "libnfs $(dpkg-query -W -f='${Version}' libnfs13)"
