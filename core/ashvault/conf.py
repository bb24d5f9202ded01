"""Configuration: the core's options, loading, and the options every chunked driver shares.

Files are read from ``/etc/ashvault/ashvault.conf`` when it exists, or from ``--config-file``. Driver options live
in the driver's own group (``[backup_posix]``) and are also read under Cinder's ``[DEFAULT] backup_*`` names, so an
operator's cinder.conf lines keep working. With no file at all, everything lives under ``ashvault_state_path``.

A cinder.conf can be read as it is: the options whose Cinder namesakes mean Cinder's own places are spelled
differently here, so Cinder's values never reach them. ashvault's state directory is ``ashvault_state_path`` (Cinder's
``state_path`` is /var/lib/cinder), created volumes go to ``ashvault_volumes_dir`` (Cinder's ``volumes_dir`` holds
its target files), and the catalog is ``[ashvault_database] connection`` (Cinder's ``[database]`` is Cinder's own
MySQL schema, whose ``backups`` and ``volumes`` tables would collide with ours).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence

from oslo_config import cfg

from ashvault import exceptions
from ashvault.blocks import BLOCK

MiB = 1 << 20


def _default_state_path() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "ashvault")


core_opts = [
    cfg.StrOpt("ashvault_state_path", default=_default_state_path(),
               sample_default="$XDG_DATA_HOME/ashvault",
               help="Directory holding the catalog, locks, created volumes and, for the posix driver, backups. "
                    "Cinder's state_path is not read, so a cinder.conf never puts these under Cinder's directory."),
    cfg.StrOpt("host", default=socket.gethostname(), sample_default="<hostname>",
               help="Name of this backup host; jobs left behind are resolved only by their own host."),
    cfg.StrOpt("backup_driver", default="posix",
               help="Driver to back up to: a name (posix, nfs, glusterfs, swift, google, ceph, tsm) or a Cinder "
                    "driver path such as cinder.backup.drivers.posix.PosixBackupDriver."),
    cfg.StrOpt("backup_compression_algorithm", default="zstd",
               help="Compression for new objects: none (off, no), zlib (gzip), bz2 (bzip2), zstd, or any "
                    "compressor a plugin adds. Restore reads whatever each object was written with."),
    cfg.IntOpt("backup_compression_level",
               help="Level for the compression algorithm; unset means the algorithm's ashvault default "
                    "(zstd 1, zlib 6, bz2 9)."),
    cfg.IntOpt("backup_max_operations", default=15, min=0,
               help="Backups and restores that may run at once on this host, across all ashvault processes; "
                    "0 means no limit."),
    cfg.IntOpt("backup_pipeline_threads", default=0, min=0,
               help="CPU workers of one backup or restore: at most this many threads hash, compress or "
                    "decompress at once, while reads and transfers overlap them; 0 means one per CPU."),
    cfg.IntOpt("backup_bandwidth_limit", default=0, min=0,
               help="Bytes per second one backup or restore may move to or from the backend; 0 means no limit."),
    cfg.IntOpt("backup_object_retry_attempts", default=5, min=1,
               help="Tries of an object upload or download that fails transiently (drivers may set their own)."),
    cfg.FloatOpt("backup_object_retry_backoff", default=1.0, min=0,
                 help="Seconds before the first retry of a transient failure; doubled for each later one."),
    cfg.BoolOpt("backup_create_containers", default=True,
                help="Create a missing container; when false, a backup to a missing container fails."),
    cfg.StrOpt("ashvault_volumes_dir", default="$ashvault_state_path/volumes",
               help="Where 'volume create' puts new file volumes (Cinder's volumes_dir is not read)."),
    cfg.StrOpt("encryption", default="none", choices=["none", "aes-256-gcm", "chacha20-poly1305"],
               help="Encrypt and authenticate new containers with this cipher (FORMAT.md, Encryption). A container "
                    "keeps the cipher it was made with; one that holds a key object is always read encrypted, and "
                    "with a cipher set a container with unencrypted backups is refused."),
    cfg.StrOpt("encryption_key_file",
               help="File whose content (at least 32 bytes, e.g. head -c 32 /dev/urandom) wraps the containers' data "
                    "keys. Unset: the passphrase in $ASHVAULT_PASSPHRASE, or typed at the interactive shell's prompt."),
    cfg.StrOpt("storage_availability_zone", default="nova", help="Availability zone recorded on backups."),
]

DATABASE_GROUP = "ashvault_database"
"""The catalog's group. Not ``[database]``: in a cinder.conf that is Cinder's own database."""

worker_opts = [
    cfg.StrOpt("ashvault_transport_url", secret=True,
               help="oslo.messaging URL of the message bus (rabbit://user:password@host:5672/vhost). Set, the "
                    "ashvault command sends backups, restores, verifies and deletes to the ashvault-backup "
                    "workers; unset, it runs them itself."),
    cfg.IntOpt("backup_workers", default=1, min=1, help="Worker processes ashvault-backup starts on this host."),
    cfg.IntOpt("report_interval", default=10, min=1,
               help="Seconds between a worker's heartbeats in the catalog."),
    cfg.IntOpt("service_down_time", default=60, min=1,
               help="Seconds without a heartbeat after which a worker is down: another worker marks its jobs "
                    "error and removes what they wrote."),
    cfg.IntOpt("job_resend_interval", default=60, min=1,
               help="Seconds a job may wait, queued and unclaimed, before a worker sends its message again (a "
                    "restarted message bus may have lost it); a job runs once however often it is sent."),
    cfg.IntOpt("graceful_shutdown_timeout", default=60, min=0,
               help="Seconds a worker stopped with SIGTERM lets its jobs finish; jobs still running then are "
                    "marked error and what they wrote is removed."),
]

database_opts = [
    cfg.StrOpt("connection", secret=True, sample_default="sqlite:///$ashvault_state_path/ashvault.sqlite",
               help="SQLAlchemy URL of the catalog (sqlite or postgresql); unset means SQLite under "
                    "ashvault_state_path. Cinder's [database] connection is never read."),
]

MAX_OBJECT_SIZE = 64 * MiB
"""Largest ``object_size`` a chunked driver accepts: memory in flight is a dozen objects or so (see
``engine/backup.py``), so Cinder's posix default of 1999994880 bytes would cost over 20 GiB. Swift's Cinder default
(50 MiB) fits."""


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Options of the core, for oslo-config-generator (namespace ``ashvault``)."""
    return [("DEFAULT", core_opts + worker_opts), (DATABASE_GROUP, database_opts)]


def make_config(args: Sequence[str] = (), config_files: Sequence[str] | None = None) -> cfg.ConfigOpts:
    """A fresh configuration with the core options registered and files read."""
    # Cinder's [DEFAULT] names are accepted on purpose; oslo would warn about each of them on every command.
    logging.getLogger("oslo_config.cfg").setLevel(logging.ERROR)
    conf = cfg.ConfigOpts()
    conf.register_opts(core_opts)
    conf.register_opts(worker_opts)
    conf.register_opts(database_opts, group=DATABASE_GROUP)
    if config_files is None:
        env = os.environ.get("ASHVAULT_CONFIG_FILE")
        if env:
            config_files = [env]
        else:
            config_files = [f for f in ("/etc/ashvault/ashvault.conf",) if os.path.exists(f)]
    for f in config_files:
        if not os.path.exists(f):
            raise exceptions.ConfigurationError(reason=f"config file {f} does not exist")
    logging.getLogger(__name__).info("configuration files: %s", ", ".join(config_files) or "none")
    try:
        conf(list(args), project="ashvault", default_config_files=list(config_files), validate_default_values=True)
    except (cfg.Error, ValueError) as exc:
        raise exceptions.ConfigurationError(reason=str(exc).splitlines()[0]) from exc
    return conf


def register_group(conf: cfg.ConfigOpts, group: str, opts: list[cfg.Opt]) -> None:
    """Register a plugin's options once, when the plugin is loaded."""
    known = conf[group] if group in conf else None
    todo = [o for o in opts if known is None or o.dest not in known]
    if todo:
        conf.register_opts(todo, group=group)


def chunked_driver_opts(
    *,
    cinder: dict[str, str],
    object_size: int = 4 * MiB,
    block_size: int = BLOCK,
    container: str | None = "volumebackups",
    retry_attempts: int | None = None,
    retry_backoff: float | None = None,
    max_transfers: int = 4,
) -> list[cfg.Opt]:
    """The options every chunked driver has, with Cinder's ``[DEFAULT]`` names from ``cinder`` accepted too.

    ``cinder`` maps our option name (``object_size``, ``block_size``, ``container``, ``retry_attempts``,
    ``retry_backoff``) to the driver's Cinder name (``backup_file_size``, ...).
    """

    def old(name: str) -> list[cfg.DeprecatedOpt]:
        return [cfg.DeprecatedOpt(cinder[name], group="DEFAULT")] if name in cinder else []

    return [
        cfg.IntOpt("object_size", default=object_size, min=BLOCK, deprecated_opts=old("object_size"),
                   help="Largest object written, in bytes (uncompressed), at most 67108864 (64 MiB). Memory use "
                        "is about this times (4 x pipeline threads + max_transfers), whatever the volume size."),
        cfg.IntOpt("block_size", default=block_size, min=4096, deprecated_opts=old("block_size"),
                   help="Granularity of change detection, in bytes: an incremental stores the blocks of this size "
                        "that changed. Must divide object_size."),
        cfg.StrOpt("container", default=container, deprecated_opts=old("container"),
                   help="Container used when a backup names none."),
        cfg.IntOpt("retry_attempts", default=retry_attempts, min=1, deprecated_opts=old("retry_attempts"),
                   help="Tries of a transiently failing transfer; unset means backup_object_retry_attempts."),
        cfg.FloatOpt("retry_backoff", default=retry_backoff, min=0, deprecated_opts=old("retry_backoff"),
                     help="First wait before a retry, in seconds; unset means backup_object_retry_backoff."),
        cfg.IntOpt("max_transfers", default=max_transfers, min=1,
                   help="Objects moved to or from the backend at once by one backup or restore."),
    ]
