#!/usr/bin/env bash
# What the tsm plugin's tests need on a Debian 12 machine, idempotently: losetup (block volumes are loop devices)
# and python3 for the dsmc simulator, which the tests put on a PATH of their own (never installed globally).
# No IBM client is installed: it cannot be, here. Needs root for apt-get only when something is missing.
set -euo pipefail
cd "$(dirname "$0")"
PKGS=(mount python3)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -o DPkg::Lock::Timeout=600 >/dev/null
    apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
fi
# The loop driver may be a module; without it the tests that need a block device fail under CI=true.
[ -e /dev/loop-control ] || modprobe loop 2>/dev/null || true
[ -e /dev/loop-control ] || echo "tsm: no /dev/loop-control: the block-device tests will fail under CI" >&2
DSMC_SIM_DIR=$(mktemp -d)
trap 'rm -rf "$DSMC_SIM_DIR"' EXIT
export DSMC_SIM_DIR
python3 dsmc_sim/dsmc query session >/dev/null || { echo "tsm: the dsmc simulator does not run" >&2; exit 1; }
echo "tsm: losetup $(losetup --version | awk '{print $NF}'), dsmc simulator ok"
