"""The shell: commands from the entry points, help, the interactive mode, and one-line errors."""

from __future__ import annotations

import pathlib
import subprocess
import sys

EXE = str(pathlib.Path(sys.executable).parent / "ashvault")


def _conf(tmp_path: pathlib.Path) -> str:
    conf = tmp_path / "a.conf"
    conf.write_text(f"[DEFAULT]\nashvault_state_path = {tmp_path / 'state'}\n")
    return str(conf)


def test_help_lists_every_command() -> None:
    out = subprocess.run([EXE, "--help"], capture_output=True, text=True).stdout
    for cmd in ("volume create", "volume register", "backup create", "backup restore", "backup delete",
                "backup verify", "backup record export", "backup record import", "driver list", "driver show",
                "backup-create", "backup-restore", "backup-delete", "backup-list", "create"):
        assert f"\n  {cmd} " in out, cmd


def test_interactive_shell_runs_commands(tmp_path: pathlib.Path) -> None:
    proc = subprocess.run([EXE, "--config-file", _conf(tmp_path)], input="volume create v --size 0.01 -f value "
                          "-c name\nvolume list -f value -c name\nbackup show nope\nquit\n", capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1, "the shell exits with its last command's status (quit is not a command)"
    assert proc.stdout.split() == ["v", "v"]
    assert "ashvault: error: backup 'nope' not found" in proc.stderr


def test_missing_config_file_is_one_line(tmp_path: pathlib.Path) -> None:
    proc = subprocess.run([EXE, "--config-file", str(tmp_path / "none.conf"), "volume", "list"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [f"ashvault: error: invalid configuration: config file "
                                                f"{tmp_path / 'none.conf'} does not exist"]
