"""The posix driver: the chunked engine over a directory."""

from __future__ import annotations

from oslo_config import cfg

from ashvault.chunked import ChunkedBackupDriver
from ashvault.objectstore import ObjectStore
from ashvault_posix import opts
from ashvault_posix.objectstore import PosixObjectStore


class PosixBackupDriver(ChunkedBackupDriver):
    """Backs up to a directory on a local or mounted file system (``[backup_posix] path``)."""

    name = "posix"
    option_group = opts.GROUP

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return opts.posix_opts

    def make_object_store(self) -> ObjectStore:
        return PosixObjectStore(
            self.options.path,
            create_containers=self.conf.backup_create_containers,
            fsync=self.options.fsync,
            direct_io=self.options.direct_io,
        )
