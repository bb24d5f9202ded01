"""``dsmc``, IBM Spectrum Protect's backup-archive client, driven through plumbum.

One :class:`Dsmc` builds each command line, hands the node's password over in a private options file (never on the
command line, where ``ps`` would show it), stops a call that outlives ``timeout`` or whose job is cancelled, and
judges the outcome from both the exit code and the summary block, turning dsmc's messages into ashvault's typed
errors.

dsmc's exit codes: 0 all went well; 4 some objects were skipped; 8 at least one warning (ANSnnnnW); 12 at least
one error (ANSnnnnE/S). Cinder ignored them and trusted the summary alone, so a run that ends 8 but reports the
object as backed up (restored, deleted) counts as done, as it did for Cinder, with its warnings logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from plumbum import local

from ashvault import environment, exceptions
from ashvault.driver import JobContext

LOG = logging.getLogger(__name__)

DEFAULT_OPTFILE = "/opt/tivoli/tsm/client/ba/bin/dsm.opt"
POLL = 0.25
"""Seconds between checks of a running dsmc for cancellation and the timeout."""

_MESSAGE = re.compile(r"\b(AN[RS]\d{4})([IWES])\b:?\s*(.*)")
_SUMMARY = re.compile(r"^\s*(?:AN[RS]\d{4}I\s+)?(Total number of [^:]+?|Elapsed processing time|Objects compressed by"
                      r"|Data transfer time|Network data transfer rate|Aggregate data transfer rate"
                      r"|Total data reduction ratio)\s*:\s*(\S.*?)\s*$")
_SIZE = re.compile(r"^([\d,.]+)\s*(B|KB|MB|GB|TB)$", re.IGNORECASE)

_AUTH = {"ANS1025E", "ANS1051I", "ANS1503E"}
_TRANSIENT = {"ANS1017E", "ANS1029E", "ANS1301E", "ANS1311E", "ANS1312E", "ANS1329S"}
_SETUP = {"ANS1035S", "ANS1217E", "ANS1108E", "ANS1107E", "ANS1102E"}
_MISSING = {"ANS1302E", "ANS1092W", "ANS4000E"}
_DAMAGED = {"ANS1314E"}

MODES = ("image", "file")


@dataclasses.dataclass
class Outcome:
    """What one dsmc call printed and returned."""

    rc: int
    lines: list[str]
    summary: dict[str, str]
    messages: list[tuple[str, str, str]]
    """(message id, severity I/W/E/S, whole line) in the order printed."""

    def count(self, key: str) -> int | None:
        value = self.summary.get(key)
        if value is None:
            return None
        try:
            return int(value.replace(",", ""))
        except ValueError:
            return None

    def transferred(self) -> int:
        m = _SIZE.match(self.summary.get("Total number of bytes transferred", ""))
        if not m:
            return 0
        scale = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[m.group(2).upper()]
        return int(float(m.group(1).replace(",", "")) * scale)

    def of(self, *severities: str) -> list[str]:
        return [line for _id, sev, line in self.messages if sev in severities]

    def ids(self) -> set[str]:
        return {mid + sev for mid, sev, _line in self.messages}

    def gist(self) -> str:
        """dsmc's own words for what went wrong: its errors, else its warnings, else its last line."""
        picked = self.of("E", "S") or self.of("W") or [ln for ln in self.lines if ln.strip()][-1:]
        return "; ".join(ln.strip() for ln in picked)[:400] or "no output"


def parse(rc: int, text: str) -> Outcome:
    lines = text.splitlines()
    summary = {}
    messages = []
    for line in lines:
        m = _SUMMARY.match(line)
        if m:
            summary[m.group(1)] = m.group(2)
        msg = _MESSAGE.search(line)
        if msg:
            messages.append((msg.group(1), msg.group(2), line.strip()))
    return Outcome(rc, lines, summary, messages)


class Dsmc:
    """The client, configured once; every method is one dsmc call and safe to use from several threads."""

    def __init__(self, *, executable: str, password: str = "", servername: str = "", optfile: str = "",
                 timeout: float = 86400, compression: bool = True) -> None:
        self.executable = executable
        self._password = password
        self.servername = servername
        self.optfile = optfile
        self.timeout = timeout
        self.compression = compression

    @classmethod
    def from_options(cls, opts: Any) -> Dsmc:
        return cls(executable=opts.dsmc_path, password=opts.password or "", servername=opts.servername,
                   optfile=opts.optfile, timeout=opts.timeout, compression=opts.compression)

    # commands

    def backup(self, mode: str, path: str, ctx: JobContext) -> Outcome:
        """Back up ``path`` as a new version of its object. Image mode reads the block device itself."""
        if mode == "image":
            words = ["backup", "image", "-snapshotproviderimage=none"]
        else:
            words = ["selective"]
        words.append(f"-compression={'yes' if self.compression else 'no'}")
        out = self.run(words, [path], ctx=ctx, what=f"backup of {path}")
        self.check(out, f"backup of {path}", "Total number of objects backed up", 1, exact=False)
        return out

    def restore(self, mode: str, path: str, dest: str, ctx: JobContext, *, backup_id: str) -> Outcome:
        """Write the active version of object ``path`` over ``dest`` (an existing device or file)."""
        if mode == "image":
            words = ["restore", "image", "-noprompt"]
        else:
            words = ["restore", "-replace=yes"]
        what = f"restore of {path} to {dest}"
        out = self.run(words, [path, dest], ctx=ctx, what=what)
        if out.ids() & _DAMAGED:
            raise exceptions.IntegrityError(backup=backup_id, object=path, reason=out.gist())
        self.check(out, what, "Total number of objects restored", 1)
        return out

    def delete(self, mode: str, path: str) -> None:
        """Remove every version of object ``path`` and nothing else."""
        what = f"delete of {path}"
        out = self.run(["delete", "backup", "-noprompt", f"-objtype={mode}", "-deltype=all"], [path], what=what)
        self.check(out, what, "Total number of objects deleted", 1, exact=False)

    def query(self, mode: str, path: str) -> list[str]:
        """The active versions of object ``path`` on the server, by name (empty when there is none)."""
        what = f"query of {path}"
        out = self.run(["query", "image" if mode == "image" else "backup"], [path], what=what)
        if out.ids() & _MISSING and not out.of("E", "S"):
            return []
        if out.rc not in (0, 4, 8) or out.of("E", "S"):
            raise self.error(what, out)
        row = re.compile(r"\s[AI]\s+" + re.escape(path) + "$")
        return [path for line in out.lines if row.search(line.rstrip())]

    def session(self) -> dict[str, str]:
        """``query session``: proves the server answers and accepts this node's password."""
        out = self.run(["query", "session"], [], what="query session")
        if out.rc != 0 or out.of("E", "S"):
            raise self.error("query session", out)
        fields = {}
        for line in out.lines:
            key, sep, value = line.partition(":")
            if sep and key.strip():
                fields[key.strip(" .")] = value.strip().strip('"')
        if "Server Name" not in fields:
            raise exceptions.DriverError(reason=f"dsmc query session printed no server name: {out.gist()}")
        return fields

    # running

    def resolve(self) -> str:
        """The executable's absolute path, looked up on the current PATH. Raises ``DriverSetupError``."""
        found = shutil.which(self.executable)
        if found is None:
            raise exceptions.DriverSetupError(
                reason=f"dsmc executable '{self.executable}' not found (set [backup_tsm] dsmc_path)")
        return found

    def run(self, words: list[str], specs: list[str], *, what: str, ctx: JobContext | None = None) -> Outcome:
        """One dsmc call: the command and its options (``words``), then the filespecs. Its output is returned
        whatever the exit code; a call that outlives ``timeout`` or whose job is cancelled is stopped (the whole
        process group) and raises."""
        exe = self.resolve()
        with self._options_file() as optfile:
            argv = list(words)
            if optfile:
                argv.append(f"-optfile={optfile}")
            if self.servername:
                argv.append(f"-servername={self.servername}")
            argv += specs
            LOG.debug("running %s %s", exe, " ".join(argv))
            # plumbum's own environment is a copy taken at import, which it merges under the one given: hand it the
            # current one, and drop ashvault's secrets from both.
            for name in environment.SECRET_VARIABLES:
                local.env.pop(name, None)
            proc = local[exe][argv].popen(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, env=environment.for_child(), new_session=True)
            text = self._wait(proc, what, ctx)
        out = parse(proc.returncode, self._redact(text))
        LOG.debug("dsmc %s: exit code %d, %s", what, out.rc, out.gist())
        return out

    def _wait(self, proc: subprocess.Popen[Any], what: str, ctx: JobContext | None) -> str:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                raw, _ = proc.communicate(timeout=max(0.0, min(POLL, deadline - time.monotonic())))
                return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
            except subprocess.TimeoutExpired:
                pass
            if ctx is not None:
                try:
                    ctx.check()
                except exceptions.Cancelled:
                    self._stop(proc)
                    raise
            if time.monotonic() >= deadline:
                self._stop(proc)
                raise exceptions.TransientDriverError(
                    reason=f"dsmc {what} did not finish within {self.timeout:g} s ([backup_tsm] timeout); "
                           "it was stopped")

    @staticmethod
    def _stop(proc: subprocess.Popen[Any]) -> None:
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 30.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.communicate(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue

    @contextlib.contextmanager
    def _options_file(self) -> Iterator[str]:
        """The options file for one call: the configured one, plus the password in a private copy if one is set.

        The copy lives in a directory only this user can enter, is created 0600 and is removed when the call
        ends, so the password is never on a command line, in the environment of dsmc or in a file others read.
        """
        base = self.optfile or os.environ.get("DSM_CONFIG", "") or ""
        if not base and os.path.exists(DEFAULT_OPTFILE):
            base = DEFAULT_OPTFILE
        if not self._password:
            yield self.optfile
            return
        lines = []
        if base:
            try:
                with open(base) as f:
                    lines = [ln for ln in f.read().splitlines() if ln.strip().split(" ")[0].lower() != "password"]
            except OSError as exc:
                raise exceptions.DriverSetupError(reason=f"cannot read the dsmc options file {base}: "
                                                         f"{exc.strerror}") from exc
        directory = tempfile.mkdtemp(prefix="ashvault-dsmc-")
        path = os.path.join(directory, "dsm.opt")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("\n".join([*lines, f"PASSWORD {self._password}", ""]))
            yield path
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _redact(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    # judging

    def check(self, out: Outcome, what: str, key: str, want: int, *, exact: bool = True) -> None:
        """Raise unless the exit code and the summary agree that ``key`` reached ``want``."""
        if out.rc not in (0, 4, 8, 12):
            raise exceptions.DriverError(reason=f"dsmc {what} ended with exit code {out.rc}: {out.gist()}")
        if out.rc == 12 or out.of("E", "S"):
            raise self.error(what, out)
        got = out.count(key)
        if got is None:
            raise exceptions.DriverError(
                reason=f"dsmc {what} ended with exit code {out.rc} but printed no '{key}' line, so it cannot be "
                       f"trusted: {out.gist()}")
        if got < want or (exact and got != want):
            raise exceptions.DriverError(
                reason=f"dsmc {what}: '{key}' is {got}, not {want} (exit code {out.rc}): {out.gist()}")
        if out.rc:
            LOG.warning("dsmc %s succeeded with exit code %d: %s", what, out.rc, out.gist())

    def error(self, what: str, out: Outcome) -> exceptions.AshvaultError:
        """The typed error for a failed call, with dsmc's own message."""
        ids = out.ids()
        reason = f"dsmc {what} failed (exit code {out.rc}): {out.gist()}"
        if ids & _AUTH:
            return exceptions.AuthenticationFailed(reason=reason)
        if ids & _TRANSIENT:
            return exceptions.TransientDriverError(reason=reason)
        if ids & _SETUP:
            return exceptions.DriverSetupError(reason=reason)
        if ids & _MISSING:
            return exceptions.InvalidBackup(reason=reason)
        return exceptions.DriverError(reason=reason)
