"""The tools under test, each driven through its real command line, each with its repository under the workdir.

Every tool does the same three timed steps on the same volume: ``full``, ``incr`` (after the 1% mutation) and
``restore`` (of the incremental, to a new file). Set-up (repository init, volume registration) is not timed.
"""

from __future__ import annotations

import abc
import glob
import json
import os
import secrets
import shutil
import subprocess
import sys

from benchmarks import measure

BENJI_VENV = os.environ.get("BENJI_VENV", "/opt/benji-venv")


class Tool(abc.ABC):
    """One backup tool; ``unavailable()`` says why it cannot run here, or None."""

    name: str = ""

    def __init__(self, workdir: str) -> None:
        self.dir = os.path.join(workdir, self.name)
        self.repo = os.path.join(self.dir, "repo")

    def unavailable(self) -> str | None:
        return None

    def version(self) -> str:
        return ""

    def setup(self, volume: str) -> None:
        """Start from an empty repository for ``volume``."""
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.repo)

    @abc.abstractmethod
    def full(self, volume: str) -> measure.Run: ...

    @abc.abstractmethod
    def incr(self, volume: str) -> measure.Run: ...

    @abc.abstractmethod
    def restore(self, volume: str) -> tuple[measure.Run, str]:
        """Restore the incremental to a new file; returns the run and the restored file's path."""

    def stored(self) -> int:
        """Bytes the tool keeps for its backups (apparent size, like ``du -sb``), caches excluded."""
        return measure.tree_bytes(self.repo)

    def restore_dir(self) -> str:
        d = os.path.join(self.dir, "restored")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _first_line(argv: list[str], env: dict[str, str] | None = None) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})
    except OSError as exc:
        return f"unknown ({exc.strerror})"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "unknown"


class Copy(Tool):
    """The physical baseline: ``cp --sparse=always`` of the whole volume, then fsync."""

    name = "cp"

    def version(self) -> str:
        return _first_line(["cp", "--version"])

    def _cp(self, src: str, dst: str) -> measure.Run:
        return measure.run(["cp", "--sparse=always", src, dst], written=[dst])

    def full(self, volume: str) -> measure.Run:
        return self._cp(volume, os.path.join(self.repo, "full.img"))

    def incr(self, volume: str) -> measure.Run:
        return self._cp(volume, os.path.join(self.repo, "incr.img"))

    def restore(self, volume: str) -> tuple[measure.Run, str]:
        dst = os.path.join(self.restore_dir(), "volume.img")
        return self._cp(os.path.join(self.repo, "incr.img"), dst), dst


class Ashvault(Tool):
    """ashvault's real CLI, posix driver with default settings, its own config and state under the workdir."""

    name = "ashvault"

    def __init__(self, workdir: str, *, threads: int | None = None, label: str = "") -> None:
        self.name = label or "ashvault"
        super().__init__(workdir)
        self.bin = os.path.join(os.path.dirname(sys.executable), "ashvault")
        self.state = os.path.join(self.dir, "state")
        self.conf = os.path.join(self.dir, "ashvault.conf")
        self.threads = threads
        self.backups: dict[str, str] = {}

    def unavailable(self) -> str | None:
        return None if os.access(self.bin, os.X_OK) else f"{self.bin} missing (run scripts/setup.sh)"

    def version(self) -> str:
        from importlib.metadata import version

        return f"ashvault {version('ashvault')}"

    def cli(self, *args: str, written: tuple[str, ...] = ()) -> measure.Run:
        return measure.run([self.bin, "--config-file", self.conf, *args], written=written)

    def setup(self, volume: str) -> None:
        super().setup(volume)
        extra = f"backup_pipeline_threads = {self.threads}\n" if self.threads is not None else ""
        with open(self.conf, "w") as f:
            f.write(f"[DEFAULT]\nashvault_state_path = {self.state}\nbackup_driver = posix\n{extra}"
                    f"\n[backup_posix]\npath = {self.repo}\n")
        self.cli("volume", "register", "bench", volume)

    def _backup(self, key: str, *extra: str) -> measure.Run:
        r = self.cli("backup", "create", "bench", "--name", key, *extra, "-f", "json",
                     written=(self.repo, self.state))
        self.backups[key] = json.loads(r.stdout)["id"]
        return r

    def full(self, volume: str) -> measure.Run:
        return self._backup("full")

    def incr(self, volume: str) -> measure.Run:
        return self._backup("incr", "--incremental")

    def restore(self, volume: str) -> tuple[measure.Run, str]:
        r = self.cli("backup", "restore", self.backups["incr"], "-f", "json", written=(self.state,))
        return r, json.loads(r.stdout)["volume_location"]

    def metadata_bytes(self, key: str = "full") -> int:
        """Bytes of the ``manifest`` and ``index`` objects under the backup's prefix."""
        prefix = glob.glob(os.path.join(self.repo, "**", f"backup_{self.backups[key]}"), recursive=True)
        return sum(os.path.getsize(os.path.join(p, n)) for p in prefix for n in ("manifest", "index")
                   if os.path.exists(os.path.join(p, n)))


class Restic(Tool):
    """restic from Debian, repository format 2, default compression (auto); the password only in the env."""

    name = "restic"

    def __init__(self, workdir: str) -> None:
        super().__init__(workdir)
        self.env = {"RESTIC_PASSWORD": secrets.token_hex(16), "RESTIC_REPOSITORY": self.repo,
                    "RESTIC_CACHE_DIR": os.path.join(self.dir, "cache")}

    def unavailable(self) -> str | None:
        return None if shutil.which("restic") else "restic not installed (benchmarks/install.sh)"

    def version(self) -> str:
        return _first_line(["restic", "version"])

    def setup(self, volume: str) -> None:
        super().setup(volume)
        measure.run(["restic", "init", "--repository-version", "2", "-q"], env=self.env)

    def _backup(self, volume: str) -> measure.Run:
        return measure.run(["restic", "backup", "-q", "--host", "bench", volume], env=self.env, written=[self.repo])

    def full(self, volume: str) -> measure.Run:
        return self._backup(volume)

    def incr(self, volume: str) -> measure.Run:
        return self._backup(volume)

    def restore(self, volume: str) -> tuple[measure.Run, str]:
        dst = self.restore_dir()
        r = measure.run(["restic", "restore", "latest", "-q", "--host", "bench", "--target", dst],
                        env=self.env, written=[dst])
        return r, os.path.join(dst, os.path.abspath(volume).lstrip("/"))


class Borg(Tool):
    """borg from Debian: ``-e none``, default compression (lz4) and chunker; the volume by relative path."""

    name = "borg"

    def __init__(self, workdir: str) -> None:
        super().__init__(workdir)
        self.env = {"BORG_REPO": self.repo, "BORG_BASE_DIR": os.path.join(self.dir, "base"),
                    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes", "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}

    def unavailable(self) -> str | None:
        return None if shutil.which("borg") else "borg not installed (benchmarks/install.sh)"

    def version(self) -> str:
        return _first_line(["borg", "--version"])

    def setup(self, volume: str) -> None:
        super().setup(volume)
        os.rmdir(self.repo)
        measure.run(["borg", "init", "-e", "none"], env=self.env)

    def _create(self, volume: str, archive: str) -> measure.Run:
        return measure.run(["borg", "create", f"::{archive}", os.path.basename(volume)], env=self.env,
                           cwd=os.path.dirname(os.path.abspath(volume)), written=[self.repo])

    def full(self, volume: str) -> measure.Run:
        return self._create(volume, "full")

    def incr(self, volume: str) -> measure.Run:
        return self._create(volume, "incr")

    def restore(self, volume: str) -> tuple[measure.Run, str]:
        dst = self.restore_dir()
        r = measure.run(["borg", "extract", "::incr"], env=self.env, cwd=dst, written=[dst])
        return r, os.path.join(dst, os.path.basename(volume))


class Benji(Tool):
    """Benji 0.17 from its own venv: defaults (4 MiB blocks, BLAKE2b, no transform, SQLite, file storage)."""

    name = "benji"

    def __init__(self, workdir: str) -> None:
        super().__init__(workdir)
        self.bin = os.path.join(BENJI_VENV, "bin", "benji")
        self.conf = os.path.join(self.dir, "benji.yaml")
        self.uids: dict[str, str] = {}

    def unavailable(self) -> str | None:
        if os.access(self.bin, os.X_OK):
            return None
        try:
            with open(BENJI_VENV + ".failed") as f:
                return "not installable here: " + " ".join(f.read().split())[:200]
        except OSError:
            return f"not installed ({self.bin} missing; benchmarks/install.sh installs it)"

    def version(self) -> str:
        return "benji " + _first_line([os.path.join(BENJI_VENV, "bin", "python"), "-c",
                                       "import importlib.metadata as m; print(m.version('benji'))"])

    def stored(self) -> int:
        return super().stored() + measure.tree_bytes(os.path.join(self.dir, "benji.sqlite"))

    def setup(self, volume: str) -> None:
        super().setup(volume)
        with open(self.conf, "w") as f:
            f.write(f"configurationVersion: '1'\ndatabaseEngine: sqlite:///{self.dir}/benji.sqlite\n"
                    f"defaultStorage: s1\nlogFile: null\nstorages:\n  - name: s1\n    storageId: 1\n"
                    f"    module: file\n    configuration:\n      path: {self.repo}\n"
                    f"ios:\n  - name: file\n    module: file\n")
        self._benji("database-init")

    def _benji(self, *args: str, written: tuple[str, ...] = ()) -> measure.Run:
        return measure.run([self.bin, "-c", self.conf, "--log-level", "ERROR", *args], written=written)

    def _backup(self, volume: str, key: str, *extra: str) -> measure.Run:
        r = self._benji("-m", "backup", *extra, f"file:{os.path.abspath(volume)}", "bench", written=(self.dir,))
        self.uids[key] = json.loads(r.stdout)["versions"][0]["uid"]
        return r

    def full(self, volume: str) -> measure.Run:
        return self._backup(volume, "full")

    def incr(self, volume: str) -> measure.Run:
        return self._backup(volume, "incr", "-f", self.uids["full"])

    def restore(self, volume: str) -> tuple[measure.Run, str]:
        dst = os.path.join(self.restore_dir(), "volume.img")
        return self._benji("restore", self.uids["incr"], f"file:{dst}", written=(dst,)), dst


ALL: dict[str, type[Tool]] = {"cp": Copy, "ashvault": Ashvault, "restic": Restic, "borg": Borg, "benji": Benji}
