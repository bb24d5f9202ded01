"""The swift driver: the chunked engine over an OpenStack Swift account."""

from __future__ import annotations

import os

from oslo_config import cfg

from ashvault.chunked import ChunkedBackupDriver
from ashvault.objectstore import ObjectStore
from ashvault_swift import auth, opts
from ashvault_swift.objectstore import SwiftObjectStore


class SwiftBackupDriver(ChunkedBackupDriver):
    """Backs up to Swift (``[backup_swift]``), authenticating as configured by ``auth`` and ``auth_version``."""

    name = "swift"
    option_group = opts.GROUP

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return opts.swift_opts

    def make_object_store(self) -> ObjectStore:
        o = self.options
        return SwiftObjectStore(
            auth.from_options(o, os.environ),
            create_containers=self.conf.backup_create_containers,
            storage_policy=o.create_storage_policy,
            check_container=self.default_container,
            timeout=o.timeout,
            insecure=o.auth_insecure,
            cacert=o.ca_cert_file,
        )
