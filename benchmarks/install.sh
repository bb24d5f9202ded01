#!/usr/bin/env bash
# Install the peer tools the benchmark compares ashvault with. Idempotent, and quick when they are present.
#   restic, borgbackup, time (peak RSS): Debian's packages (apt-get; needs root unless already installed).
#   benji 0.17.0: pip, in its own venv (BENJI_VENV, default /opt/benji-venv). Benji is optional: when it cannot
#   be installed the reason goes to $BENJI_VENV.failed and the benchmark reports it "not installable here".
set -uo pipefail

BENJI_VENV=${BENJI_VENV:-/opt/benji-venv}
BENJI_VERSION=0.17.0

missing=()
command -v restic >/dev/null || missing+=(restic)
command -v borg >/dev/null || missing+=(borgbackup)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "benchmarks/install.sh: ${missing[*]} missing and not root: cannot apt-get install" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null 2>&1
        apt-get install -y -q "${missing[@]}" >/dev/null || { echo "apt-get install ${missing[*]} failed" >&2; exit 1; }
    }
fi

# Benji: never fails this script. Its pins need two workarounds on Python 3.11 (see performance.md):
# ruamel.yaml<0.16 has a C extension that no longer builds (built here without it), and pkg_resources
# (setuptools<70).
install_benji() {
    local py tmp
    py=$(command -v python3.11 || command -v python3) || { echo "no python3.11 found"; return 1; }
    [ -x "$BENJI_VENV/bin/python" ] || "$py" -m venv "$BENJI_VENV" || { echo "venv creation failed"; return 1; }
    local pip=("$BENJI_VENV/bin/python" -m pip install -q --disable-pip-version-check)
    "${pip[@]}" 'setuptools<70' wheel || { echo "pip install setuptools<70 failed"; return 1; }
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    "$BENJI_VENV/bin/python" -m pip download -q --no-deps --no-binary :all: -d "$tmp" 'ruamel.yaml==0.15.100' \
        || { echo "cannot download ruamel.yaml 0.15.100"; return 1; }
    tar -xzf "$tmp"/ruamel.yaml-0.15.100.tar.gz -C "$tmp" || { echo "cannot unpack ruamel.yaml"; return 1; }
    sed -i 's/^    ext_modules=\[/    ext_modules=[], _no_ext=[/' "$tmp/ruamel.yaml-0.15.100/__init__.py"
    "${pip[@]}" --no-build-isolation "$tmp/ruamel.yaml-0.15.100" || { echo "ruamel.yaml 0.15.100 build failed"; return 1; }
    "${pip[@]}" "benji==$BENJI_VERSION" zstandard || { echo "pip install benji==$BENJI_VERSION failed"; return 1; }
    "$BENJI_VENV/bin/benji" --help >/dev/null 2>&1 || { echo "benji installed but does not start"; return 1; }
}

if [ -x "$BENJI_VENV/bin/benji" ] && "$BENJI_VENV/bin/benji" --help >/dev/null 2>&1; then
    rm -f "$BENJI_VENV.failed"
else
    log=$(mktemp)
    if reason=$(install_benji 2>"$log"); then
        rm -f "$BENJI_VENV.failed"
    else
        mkdir -p "$(dirname "$BENJI_VENV")"
        { echo "${reason:-benji install failed}"; tail -n 5 "$log"; } >"$BENJI_VENV.failed" 2>/dev/null || true
        echo "benchmarks/install.sh: benji not installable here: ${reason:-see $log}" >&2
    fi
    rm -f "$log"
fi
exit 0
