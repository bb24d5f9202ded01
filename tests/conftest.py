"""Fixtures for the cross-distribution tests."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
from clitools import ROOT, Ashvault


@pytest.fixture
def av(tmp_path: pathlib.Path) -> Ashvault:
    return Ashvault(tmp_path)


@pytest.fixture(scope="session")
def core_only_venv(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A virtualenv holding ashvault and ashvault-cli only, installed with pip as a user would."""
    venv = tmp_path_factory.mktemp("core-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    proc = subprocess.run([*pip, str(ROOT / "core"), str(ROOT / "cli")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return venv
