"""The glusterfs driver: mounts ``[backup_glusterfs] share`` (``mount -t glusterfs``), then the posix object store."""

from __future__ import annotations

from oslo_config import cfg

from ashvault_posix import opts
from ashvault_posix.mount import MountedBackupDriver


class GlusterfsBackupDriver(MountedBackupDriver):
    """Backs up to a GlusterFS volume through its FUSE client (Cinder's ``GlusterfsBackupDriver``)."""

    name = "glusterfs"
    option_group = opts.GLUSTERFS_GROUP

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return opts.glusterfs_opts
