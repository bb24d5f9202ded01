"""Options of the posix, nfs and glusterfs drivers.

Imports nothing but oslo.config, so the sample config never needs the backend.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from ashvault.conf import MiB, chunked_driver_opts

GROUP = "backup_posix"
NFS_GROUP = "backup_nfs"
GLUSTERFS_GROUP = "backup_glusterfs"


def _cinder(name: str) -> list[cfg.DeprecatedOpt]:
    return [cfg.DeprecatedOpt(name, group="DEFAULT")]


def _file_opts(*, direct_io: bool = True, object_size: int = 4 * MiB, max_transfers: int = 4) -> list[cfg.Opt]:
    """What every posix-family driver writes with: fsync, O_DIRECT, and the chunked options under Cinder's names."""
    return [
        cfg.BoolOpt("fsync", default=True,
                    help="fsync every object and its directory before it counts as written."),
        cfg.BoolOpt("direct_io", default=direct_io,
                    help="Read and write objects with O_DIRECT where the file system allows it, so backups and "
                         "restores do not fill the page cache (on virtual machines that also saves most of the "
                         "CPU a copy through it costs). File systems that refuse it get ordinary I/O."),
        *chunked_driver_opts(
            cinder={"object_size": "backup_file_size", "block_size": "backup_sha_block_size_bytes",
                    "container": "backup_container"},
            object_size=object_size, max_transfers=max_transfers,
        ),
    ]


def _mount_opts(*, command: str, cinder: dict[str, str]) -> list[cfg.Opt]:
    """The options of a driver that mounts a share; ``cinder`` maps our names to the driver's Cinder names."""

    def old(name: str) -> list[cfg.DeprecatedOpt]:
        return _cinder(cinder[name]) if name in cinder else []

    return [
        cfg.StrOpt("share", deprecated_opts=old("share"),
                   help="The share to mount, as the mount command takes it (NFS: host:/path, [ipv6]:/path; "
                        "GlusterFS: host:/volume)."),
        cfg.StrOpt("mount_point_base", default="$ashvault_state_path/backup_mount",
                   deprecated_opts=old("mount_point_base"),
                   help="Directory under which the share is mounted, on a subdirectory named by the md5 of the "
                        "share string (as Cinder's os-brick names it)."),
        cfg.StrOpt("mount_options", deprecated_opts=old("mount_options"),
                   help="Options passed to the mount command with -o."),
        cfg.IntOpt("mount_attempts", default=3, min=1, deprecated_opts=old("mount_attempts"),
                   help="Tries of the mount command before the share counts as unreachable; the wait between "
                        "tries starts at mount_retry_backoff seconds and doubles."),
        cfg.FloatOpt("mount_retry_backoff", default=1.0, min=0,
                     help="Seconds before the second try of the mount command."),
        cfg.StrOpt("mount_command", default=command,
                   help="The mount command, split as a shell would but run without one; the driver appends "
                        "'-o <mount_options>', the share and the mount point."),
    ]


posix_opts = [
    cfg.StrOpt("path", default="$ashvault_state_path/backup",
               deprecated_opts=[cfg.DeprecatedOpt("backup_posix_path", group="DEFAULT")],
               help="Directory that holds the backup containers."),
    *_file_opts(),
]

REMOTE_IO: dict[str, Any] = {"direct_io": False, "object_size": 32 * MiB, "max_transfers": 8}
"""Defaults for shares. On the GlusterFS FUSE mount (1 GiB, benchmarks/gluster/bench.py, a busy 2-CPU machine)
backups went at 0.39x of dd with O_DIRECT and 4 MiB objects, 0.76-0.96x without O_DIRECT with 16 MiB objects, and
0.65-1.06x with 32 MiB; restores at 0.85-1.9x with 8 transfers. O_DIRECT through FUSE becomes one synchronous
request per 128 KiB, and each object costs an fsync round trip to the brick."""

nfs_opts = [
    *_mount_opts(command="mount -t nfs",
                 cinder={"share": "backup_share", "mount_point_base": "backup_mount_point_base",
                         "mount_options": "backup_mount_options", "mount_attempts": "backup_mount_attempts"}),
    *_file_opts(**REMOTE_IO),
]

glusterfs_opts = [
    *_mount_opts(command="mount -t glusterfs",
                 cinder={"share": "glusterfs_backup_share", "mount_point_base": "glusterfs_backup_mount_point"}),
    *_file_opts(**REMOTE_IO),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, posix_opts), (NFS_GROUP, nfs_opts), (GLUSTERFS_GROUP, glusterfs_opts)]
