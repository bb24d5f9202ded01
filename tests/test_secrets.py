"""Secrets never reach output, errors, logs, files or command lines.

One session of commands with every kind of secret configured: an encryption passphrase (``$ASHVAULT_PASSPHRASE``, a
new one for ``encryption change-key`` and a wrong one), a key file, the swift key (under its own and its Cinder name),
the tsm password (the dsmc simulator stands in for IBM's client), a Ceph key in the keyring the ceph driver would
read, a password in ``transport_url``. Each command's stdout and stderr, ``--log-file`` logs, ``-v`` and ``--debug``
runs and error paths are kept; so are the command line and environment of every dsmc the tsm driver starts (from
/proc, by a wrapper around the simulator) and every file the session left under its directory (catalog, locks,
repositories, restored volumes). None may hold a secret, in any of the forms it could be printed in.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pathlib
import stat
import subprocess
import sys

import pytest
from clitools import BIN, ROOT, MiB, sha256

from ashvault.testing import volumes

PASSPHRASE = "Pp-horse-7d1e-battery"
NEW_PASSPHRASE = "Np-staple-41c9-correct"
WRONG_PASSPHRASE = "Wp-guess-93b0-wrong"
SWIFT_KEY = "Sw-key-5e2a-testing"
TSM_PASSWORD = "Tsm-pw-c8f1-node"
CEPH_KEY = "AQBcZ2Nl4Xs0JhAAq3Yv0Q0p8xKkS9c1Qe7mWQ=="
RABBIT_PASSWORD = "Rb-pw-0a7d-broker"
SIMULATOR = ROOT / "plugins" / "tsm" / "ci" / "dsmc_sim" / "dsmc"


@dataclasses.dataclass
class Run:
    args: tuple[str, ...]
    rc: int
    out: str
    err: str


class Session:
    """Runs ``ashvault`` commands and keeps everything they printed."""

    def __init__(self, tmp: pathlib.Path) -> None:
        self.tmp = tmp
        self.runs: list[Run] = []

    def __call__(self, conf: pathlib.Path, *args: str, env: dict[str, str] | None = None,
                 ok: bool | None = True, one_line: bool = True) -> Run:
        """Run a command; ``ok`` True asserts success, False a one-line failure, None either."""
        full = {k: v for k, v in os.environ.items() if not k.startswith("ASHVAULT_")}
        proc = subprocess.run([str(BIN / "ashvault"), "--config-file", str(conf), *args], capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL, env={**full, **(env or {})})
        run = Run(args, proc.returncode, proc.stdout, proc.stderr)
        self.runs.append(run)
        if ok is None:
            pass
        elif ok:
            assert run.rc == 0, f"ashvault {' '.join(args)} failed ({run.rc}): {run.err}{run.out}"
        else:
            assert run.rc != 0, f"ashvault {' '.join(args)} should have failed: {run.out}"
            lines = [ln for ln in run.err.splitlines() if ln.strip()]
            if one_line and "--debug" not in args and "-v" not in args:
                assert len(lines) == 1 and lines[0].startswith("ashvault: error: "), run.err
        return run

    def j(self, conf: pathlib.Path, *args: str, env: dict[str, str] | None = None) -> dict[str, str]:
        return json.loads(self(conf, *args, "-f", "json", env=env).out)  # type: ignore[no-any-return]


def _forms(secret: bytes) -> list[bytes]:
    """The ways a secret could be printed: as it is, in hex, in base64."""
    return [secret, secret.hex().encode(), base64.b64encode(secret), base64.b64encode(secret).rstrip(b"=")]


def _dsmc_wrapper(tmp: pathlib.Path) -> pathlib.Path:
    """A dsmc that records its own command line and environment from /proc, then becomes the simulator."""
    seen = tmp / "dsmc-proc"
    seen.mkdir()
    wrapper = tmp / "dsmc"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'cat /proc/$$/cmdline > "{seen}/$$.cmdline"\n'
        f'cat /proc/$$/environ > "{seen}/$$.environ"\n'
        f'exec "{sys.executable}" "{SIMULATOR}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def test_no_secret_anywhere(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not SIMULATOR.exists():
        pytest.fail(f"the dsmc simulator is missing: {SIMULATOR}")
    sim = tmp_path / "tsm-server"
    sim.mkdir()
    (sim / "password").write_text(TSM_PASSWORD + "\n")
    dsmc = _dsmc_wrapper(tmp_path)
    key = tmp_path / "secret" / "key"
    key.parent.mkdir()
    key.write_bytes(os.urandom(32))
    other_key = tmp_path / "secret" / "other-key"
    other_key.write_bytes(os.urandom(32))
    short_key = tmp_path / "secret" / "short-key"
    short_key.write_bytes(b"Short-k3y")
    keyring = tmp_path / "secret" / "ceph.client.cinder.keyring"
    keyring.write_text(f"[client.cinder]\n\tkey = {CEPH_KEY}\n")
    ceph_conf = tmp_path / "secret" / "ceph.conf"
    ceph_conf.write_text(f"[global]\nmon_host = 127.0.0.1:9\nkeyring = {keyring}\n")

    state, backups = tmp_path / "state", tmp_path / "backups"
    common = (
        f"[DEFAULT]\nashvault_state_path = {state}\nbackup_swift_key = {SWIFT_KEY}\n"
        f"backup_tsm_password = {TSM_PASSWORD}\n"
        "{default}"
        f"[backup_posix]\npath = {backups}\n"
        f"[backup_swift]\nauth = single_user\nauth_url = http://127.0.0.1:9/auth/v1.0\nuser = test:tester\n"
        f"key = {SWIFT_KEY}\nretry_attempts = 1\nretry_backoff = 0\n"
        f"[backup_tsm]\ndsmc_path = {dsmc}\nbackup_path = {tmp_path}\n"
        f"[backup_ceph]\nconf = {ceph_conf}\nconnect_timeout = 1\n"
    )
    confs = tmp_path / "secret"

    def conf(name: str, default: str) -> pathlib.Path:
        path = confs / f"{name}.conf"
        path.write_text(common.replace("{default}", default))
        return path

    by_pass = conf("pass", "backup_driver = posix\nencryption = aes-256-gcm\n")
    by_file = conf("file", f"backup_driver = posix\nencryption = chacha20-poly1305\nencryption_key_file = {key}\n")
    wrong_file = conf("wrong", f"backup_driver = posix\nencryption = chacha20-poly1305\n"
                               f"encryption_key_file = {other_key}\n")
    short_file = conf("short", f"backup_driver = posix\nencryption = chacha20-poly1305\n"
                               f"encryption_key_file = {short_key}\n")
    swift = conf("swift", "backup_driver = swift\n")
    tsm = conf("tsm", "backup_driver = tsm\n")
    rpc = conf("rpc", f"backup_driver = posix\nashvault_transport_url = rabbit://ashvault:{RABBIT_PASSWORD}@127.0.0.1:9/\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {"ASHVAULT_PASSPHRASE": PASSPHRASE, "DSMC_SIM_DIR": str(sim)}
    av = Session(tmp_path)

    # A passphrase from the environment: the walk-through, -v, --debug, a log file, every output format.
    vol = volumes.write_mixed(str(tmp_path / "v.img"), 4 * MiB, seed=7, run=MiB)
    av(by_pass, "volume", "register", "v", vol, env=env)
    want = sha256(vol)
    av.j(by_pass, "-v", "backup", "create", "v", "--name", "full", env=env)
    volumes.mutate(vol, percent=5, seed=8)
    av.j(by_pass, "--debug", "--log-file", str(logs / "incr.log"), "backup", "create", "v", "--incremental", env=env)
    for fmt in ("json", "table"):
        av(by_pass, "backup", "list", "--long", "-f", fmt, env=env)
    for fmt in ("yaml", "shell"):
        av(by_pass, "backup", "show", "full", "-f", fmt, env=env)
    av(by_pass, "-v", "--log-file", str(logs / "verify.log"), "backup", "verify", "full", env=env)
    restored = av.j(by_pass, "--debug", "backup", "restore", "full", env=env)
    assert sha256(restored["volume_location"]) == want
    av(by_pass, "backup", "usage", "-f", "json", env=env)
    av(by_pass, "backup", "record", "export", "full", "-f", "json", env=env)
    av(by_pass, "driver", "list", "-f", "json", env=env)
    for name, fmt in (("posix", "table"), ("swift", "json"), ("tsm", "value")):
        av(by_pass, "driver", "show", name, "-f", fmt, env=env)
    # Without the rados bindings this is an error path; with them, it shows the driver: either way, no key.
    av(by_pass, "driver", "show", "ceph", env=env, ok=None)
    av(by_pass, "--debug", "driver", "show", "ceph", env=env, ok=None)

    # Wrong, missing and changed passphrases.
    wrong = {**env, "ASHVAULT_PASSPHRASE": WRONG_PASSPHRASE}
    av(by_pass, "backup", "verify", "full", env=wrong, ok=False)
    av(by_pass, "--debug", "-v", "backup", "restore", "full", env=wrong, ok=False)
    av(by_pass, "backup", "verify", "full", env={"DSMC_SIM_DIR": str(sim)}, ok=False)
    changed = av.j(by_pass, "-v", "encryption", "change-key", env={**env, "ASHVAULT_NEW_PASSPHRASE": NEW_PASSPHRASE})
    assert changed["new_key"] == "passphrase"
    av(by_pass, "backup", "verify", "full", env=env, ok=False)
    av(by_pass, "--debug", "backup", "verify", "full", env={**env, "ASHVAULT_PASSPHRASE": NEW_PASSPHRASE})

    # A key file: right, wrong and too short.
    av(by_file, "volume", "register", "k", volumes.write_mixed(str(tmp_path / "k.img"), 4 * MiB, seed=9, run=MiB))
    av.j(by_file, "--debug", "-v", "--log-file", str(logs / "keyfile.log"), "backup", "create", "k", "--name", "kf",
         "--container", "keyed")
    av(by_file, "backup", "verify", "kf", "-f", "json")
    av(wrong_file, "backup", "verify", "kf", ok=False)
    av(wrong_file, "--debug", "backup", "restore", "kf", ok=False)
    av(short_file, "backup", "create", "k", "--container", "keyed", ok=False)

    # Swift, Ceph and the message bus cannot be reached: their errors, plain and with --debug.
    av(swift, "driver", "show", "swift", "--check", ok=False)
    av(swift, "--debug", "-v", "driver", "show", "swift", "--check", ok=False)
    av(swift, "-v", "--log-file", str(logs / "swift.log"), "backup", "create", "v", ok=False)
    av(rpc, "driver", "show", "posix", "-f", "json")
    # An unreachable broker is not yet one line (kombu prints its retries): only the password is looked for here.
    av(rpc, "--debug", "backup", "create", "v", "--no-wait", "--name", "queued", ok=False, one_line=False)

    # TSM through the simulator: dsmc gets the password in a private options file.
    av(tsm, "volume", "register", "t", volumes.write_mixed(str(tmp_path / "t.img"), 4 * MiB, seed=10, run=MiB),
       env=env)
    t = av.j(tsm, "--debug", "-v", "--log-file", str(logs / "tsm.log"), "backup", "create", "t", env=env)
    av(tsm, "driver", "show", "tsm", "--check", "-f", "json", env=env)
    av.j(tsm, "-v", "backup", "restore", t["id"], env=env)
    av(tsm, "--debug", "backup", "delete", t["id"], env=env)
    (sim / "password").write_text("another-password\n")
    av(tsm, "--debug", "driver", "show", "tsm", "--check", env=env, ok=False)

    secrets = {
        "passphrase": _forms(PASSPHRASE.encode()), "new passphrase": _forms(NEW_PASSPHRASE.encode()),
        "wrong passphrase": _forms(WRONG_PASSPHRASE.encode()), "key file": _forms(key.read_bytes()),
        "other key file": _forms(other_key.read_bytes()), "short key file": _forms(short_key.read_bytes()),
        "swift key": _forms(SWIFT_KEY.encode()), "tsm password": _forms(TSM_PASSWORD.encode()),
        "ceph key": _forms(CEPH_KEY.encode()), "transport_url password": _forms(RABBIT_PASSWORD.encode()),
    }
    produced: dict[str, bytes] = {}
    for n, run in enumerate(av.runs):
        produced[f"#{n} ashvault {' '.join(run.args)}: stdout"] = run.out.encode()
        produced[f"#{n} ashvault {' '.join(run.args)}: stderr"] = run.err.encode()
    cmdlines = sorted((tmp_path / "dsmc-proc").glob("*.cmdline"))
    assert cmdlines, "the tsm driver started no dsmc"
    never_there = {confs, sim, tmp_path / "dsmc-proc"}
    for path in tmp_path.rglob("*"):
        if path.is_file() and not any(p in path.parents for p in never_there) and path.suffix != ".img":
            produced[str(path.relative_to(tmp_path))] = path.read_bytes()
    for path in (tmp_path / "dsmc-proc").iterdir():  # the dsmc processes' command lines and environments
        produced[f"/proc of dsmc: {path.name}"] = path.read_bytes()
    for path in [*tmp_path.rglob("*.img")]:  # volumes and restored copies: data, but no key may land there
        produced[str(path.relative_to(tmp_path))] = path.read_bytes()
    leaks = [f"{what} in {where}" for where, data in produced.items() for what, forms in secrets.items()
             if any(form in data for form in forms)]
    with capsys.disabled():
        print(f"\nsecrets: {len(secrets)} secrets, {len(av.runs)} commands, {len(produced)} outputs, files and "
              f"process records searched, {len(leaks)} found")
    assert {path.name for path in logs.iterdir()} >= {"incr.log", "verify.log", "keyfile.log", "tsm.log"}
    assert not leaks, "\n".join(leaks)
