"""Detached jobs: ``--no-wait`` without backup workers. The command admits the job, records it in the catalog and
hands it, with its lock, to a child process in a session of its own; the command returns at once and the child runs
the job through the manager, as a worker would, writing its progress to the catalog for ``backup show``.

The child inherits the job's lock descriptor, so the lock is never free between the command and the child: while
the child lives the job is alive; once it dies, even by SIGKILL, the next command's
:meth:`~ashvault.jobs.manager.Manager.cleanup_incomplete` finds the lock free and resolves the job (a backup
creating -> error, its job row ended). What the child logs goes to ``<ashvault_state_path>/logs/<kind>-<backup>.log``.

Run as ``python -m ashvault.jobs.detached``, reading the job's description (JSON) on its standard input.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from oslo_config import cfg

from ashvault import exceptions
from ashvault.catalog import JobRecord, JobState
from ashvault.catalog.models import utcnow
from ashvault.jobs.job import Job, Observers
from ashvault.jobs.manager import Manager, one_line

LOG = logging.getLogger("ashvault.jobs.detached")
PROGRESS_INTERVAL = 0.5
"""Seconds between progress updates in the catalog, as a worker writes them."""


SUFFIX = ":detached"
"""A detached job's row names ``<host>:detached`` as its worker."""


def is_detached(worker: str | None) -> bool:
    """Whether a job row's ``worker`` is a detached process rather than an ``ashvault-backup`` worker."""
    return bool(worker and worker.endswith(SUFFIX))


def log_path(conf: cfg.ConfigOpts, job: Job) -> str:
    return os.path.join(conf.ashvault_state_path, "logs", f"{job.kind}-{job.backup_id}.log")


class Started:
    """A detached job: its end is followed in the catalog (``backup show``), never waited for here."""

    def __init__(self, job_id: str, pid: int) -> None:
        self.id = job_id
        self.pid = pid

    def result(self, timeout: float | None = None) -> None:
        return None


class DetachedDispatcher:
    """Hands each admitted job to a detached child process; used for ``--no-wait`` when no workers are set."""

    def __init__(self, conf: cfg.ConfigOpts, manager: Manager) -> None:
        self.conf = conf
        self.manager = manager
        self.catalog = manager.catalog

    def submit(self, job: Job, observers: Observers | None = None) -> Started:
        """Start ``job`` (admitted by this process's manager) in a child. Raises ``AshvaultError`` when no child
        could be started; the job is then ended (a backup in error), and the caller abandons its lock."""
        lock = self.manager.admitted_lock(job)
        if lock is None:
            raise exceptions.InvalidInput(reason=f"a {job.kind} job cannot run detached")
        row = JobRecord(id=str(uuid.uuid4()), kind=job.kind, backup_id=job.backup_id, body=job.to_json(),
                        topic_host=self.conf.host, state=JobState.RUNNING, worker=self.conf.host + SUFFIX,
                        claimed_at=utcnow())
        self.catalog.add(row)
        spec = {"job": job.to_json(), "job_id": row.id, "lock_fd": lock.fileno(),
                "config_files": [os.path.abspath(f) for f in self.conf.default_config_files],
                "passphrase": _typed_passphrase(self.conf)}
        path = log_path(self.conf, job)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            with open(path, "ab") as log:
                # -P: the caller's working directory (where the child starts, "/") is no import path.
                proc = subprocess.Popen([sys.executable, "-P", "-m", __name__], stdin=subprocess.PIPE, stdout=log,
                                        stderr=log, pass_fds=(lock.fileno(),), start_new_session=True, cwd="/")
            assert proc.stdin is not None
            with proc.stdin:
                proc.stdin.write(json.dumps(spec).encode())
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            reason = f"the job could not be started in the background: {exc.strerror or exc}{where}"
            self._fail(row, job, reason)
            raise exceptions.AshvaultError(reason) from exc
        # The child holds the lock now, through its copy of the descriptor.
        self.manager.abandon(job)
        # Reaped here when this process outlives it (the interactive shell); else init reaps it.
        threading.Thread(target=proc.wait, name="ashvault-detached-reaper", daemon=True).start()
        LOG.info("%s of backup %s: running detached in process %d, log %s", job.kind, job.backup_id, proc.pid, path)
        return Started(row.id, proc.pid)

    def _fail(self, row: JobRecord, job: Job, reason: str) -> None:
        from ashvault.workers.worker import resolve

        self.catalog.end_job(row.id, None, JobState.ERROR, json.dumps({"error": "AshvaultError", "message": reason}))
        resolve(self.manager, job, reason)

    def shutdown(self) -> None:
        pass


def _typed_passphrase(conf: cfg.ConfigOpts) -> str | None:
    """The passphrase typed at the shell's prompt, which the child cannot ask for (never on its command line)."""
    if conf.encryption == "none" or conf.encryption_key_file:
        return None
    from ashvault import keys

    return keys.typed_passphrase()


class _Progress:
    """Writes a job's progress to its row at most every PROGRESS_INTERVAL seconds, and at its end."""

    def __init__(self, manager: Manager, job_id: str) -> None:
        self._catalog = manager.catalog
        self._job_id = job_id
        self._at = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._at >= PROGRESS_INTERVAL or done >= total:
            self._at = now
            try:
                self._catalog.job_progress(self._job_id, done, total)
            except exceptions.CatalogError as exc:
                LOG.warning("job %s: progress not recorded: %s", self._job_id, exc)


def run(spec: dict[str, Any]) -> int:
    """Run the job ``spec`` describes to its end, in this (child) process; 0 when it succeeded."""
    from ashvault.api import API
    from ashvault.conf import make_config
    from ashvault.workers.dispatcher import encode_error

    job = Job.from_json(spec["job"])
    conf = make_config([], spec["config_files"])
    if spec.get("passphrase"):
        from ashvault import keys

        keys.remember_passphrase(spec["passphrase"])
    api = API(conf, cleanup=False)
    try:
        api.manager.adopt(job, int(spec["lock_fd"]))
        LOG.info("%s of backup %s: started (job %s)", job.kind, job.backup_id, spec["job_id"])
        try:
            api.manager.run(job, Observers(progress=_Progress(api.manager, spec["job_id"])))
        except Exception as exc:
            text = one_line(exc)
            LOG.error("%s of backup %s: failed: %s", job.kind, job.backup_id, text)
            api.catalog.end_job(spec["job_id"], None, JobState.ERROR, encode_error(exc, text))
            return 1
        api.catalog.end_job(spec["job_id"], None, JobState.DONE, None)
        LOG.info("%s of backup %s: done", job.kind, job.backup_id)
        return 0
    finally:
        api.close()


def main() -> int:
    spec = json.loads(sys.stdin.buffer.read() or b"{}")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s %(message)s")
    try:
        return run(spec)
    except Exception:
        LOG.exception("the detached job could not run")
        return 1


if __name__ == "__main__":
    sys.exit(main())
