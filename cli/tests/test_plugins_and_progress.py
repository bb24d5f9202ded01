"""A third-party driver found through its entry point, its secrets masked; the progress bar on a terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import pty
import re
import struct
import subprocess
import sys
import termios
import textwrap

EXE = str(pathlib.Path(sys.executable).parent / "ashvault")
SECRET = "s3cr3t-do-not-print"


def _third_party(tmp_path: pathlib.Path) -> dict[str, str]:
    dist = tmp_path / "site" / "ashvault_thirdparty-2.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ashvault-thirdparty\nVersion: 2.0\n")
    (dist / "entry_points.txt").write_text("[ashvault.drivers]\nvault = thirdparty_driver:VaultDriver\n")
    (tmp_path / "site" / "thirdparty_driver.py").write_text(textwrap.dedent('''
        from oslo_config import cfg
        from ashvault.conf import chunked_driver_opts
        from ashvault.chunked import ChunkedBackupDriver
        from ashvault.testing.fakes import MemoryObjectStore

        class VaultDriver(ChunkedBackupDriver):
            name = "vault"
            option_group = "backup_vault"

            @classmethod
            def get_driver_options(cls):
                return [cfg.StrOpt("password", secret=True, deprecated_opts=[
                    cfg.DeprecatedOpt("backup_vault_password", group="DEFAULT")])] + chunked_driver_opts(cinder={})

            def make_object_store(self):
                return MemoryObjectStore()
    '''))
    conf = tmp_path / "a.conf"
    conf.write_text(f"[DEFAULT]\nashvault_state_path = {tmp_path / 'state'}\nbackup_driver = vault\n"
                    f"backup_vault_password = {SECRET}\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "ASHVAULT_CONFIG_FILE": str(conf)}


def test_third_party_driver_is_listed_and_its_secret_masked(tmp_path: pathlib.Path) -> None:
    env = _third_party(tmp_path)
    listed = subprocess.run([EXE, "driver", "list", "-f", "value", "-c", "name", "-c", "distribution"],
                            capture_output=True, text=True, env=env)
    assert "vault ashvault-thirdparty" in listed.stdout
    shown = subprocess.run([EXE, "--debug", "driver", "show", "vault", "-f", "json"], capture_output=True,
                           text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["options"]["password"] == "****"
    assert SECRET not in shown.stdout + shown.stderr
    made = subprocess.run([EXE, "-v", "--debug", "volume", "create", "v", "--size", "0.01"], capture_output=True,
                          text=True, env=env)
    backup = subprocess.run([EXE, "-v", "--debug", "backup", "create", "v", "-f", "value", "-c", "service"],
                            capture_output=True, text=True, env=env)
    assert made.returncode == 0 and backup.stdout.strip() == "vault", backup.stderr
    assert SECRET not in made.stderr + backup.stderr + backup.stdout


def _backup_on_a_terminal(env: dict[str, str], columns: int) -> tuple[str, list[str]]:
    """Run a backup with stderr on a pseudo-terminal ``columns`` wide: (stdout, the lines drawn on stderr)."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen([EXE, "backup", "create", "v", "-f", "value", "-c", "status"], stdout=subprocess.PIPE,
                            stderr=secondary, env=env)
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(primary)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode())
    return out.decode().strip(), [f for line in text.split("\n") for f in line.split("\r") if f.strip()]


def test_progress_bar_when_stderr_is_a_terminal(tmp_path: pathlib.Path) -> None:
    conf = tmp_path / "a.conf"
    conf.write_text(f"[DEFAULT]\nashvault_state_path = {tmp_path / 'state'}\n")
    env = {**os.environ, "ASHVAULT_CONFIG_FILE": str(conf)}
    env.pop("COLUMNS", None)
    subprocess.run([EXE, "volume", "create", "v", "--size", "0.05"], check=True, env=env, capture_output=True)
    out, frames = _backup_on_a_terminal(env, 110)
    assert out == "available"
    bars = [f for f in frames if f.startswith("backup v ")]
    last = bars[-1]
    assert "100%" in last and "51.2/51.2 MiB" in last and "elapsed" in last and "left" in last and "B/s" in last
    assert all(len(f) <= 110 for f in frames)
    assert re.fullmatch(r"backup v: 51.2 MiB in [0-9.]+ s \([0-9.]+ [KMG]?i?B/s\)", frames[-1].strip()), frames[-1]
    out, frames = _backup_on_a_terminal(env, 50)
    assert out == "available" and frames and all(len(f) <= 50 for f in frames), "fitted to a narrow terminal"
    piped = subprocess.run([EXE, "backup", "create", "v"], capture_output=True, text=True, env=env)
    assert piped.stderr == "", "nothing drawn when stderr is not a terminal"
