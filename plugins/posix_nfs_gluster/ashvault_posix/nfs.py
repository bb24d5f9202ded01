"""The nfs driver: mounts ``[backup_nfs] share`` (``mount -t nfs``), then the posix object store on the mount point."""

from __future__ import annotations

from oslo_config import cfg

from ashvault_posix import opts
from ashvault_posix.mount import MountedBackupDriver


class NFSBackupDriver(MountedBackupDriver):
    """Backs up to an NFS export, mounted under ``mount_point_base`` (Cinder's ``NFSBackupDriver``)."""

    name = "nfs"
    option_group = opts.NFS_GROUP

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return opts.nfs_opts
