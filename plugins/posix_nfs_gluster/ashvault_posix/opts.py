"""Options of the posix driver. Imports nothing but oslo.config, so the sample config never needs the backend."""

from __future__ import annotations

from oslo_config import cfg

from ashvault.conf import chunked_driver_opts

GROUP = "backup_posix"

posix_opts = [
    cfg.StrOpt("path", default="$ashvault_state_path/backup",
               deprecated_opts=[cfg.DeprecatedOpt("backup_posix_path", group="DEFAULT")],
               help="Directory that holds the backup containers."),
    cfg.BoolOpt("fsync", default=True,
                help="fsync every object and its directory before it counts as written."),
    cfg.BoolOpt("direct_io", default=True,
                help="Read and write objects with O_DIRECT where the file system allows it, so backups and "
                     "restores do not fill the page cache (on virtual machines that also saves most of the CPU "
                     "a copy through it costs)."),
    *chunked_driver_opts(
        cinder={"object_size": "backup_file_size", "block_size": "backup_sha_block_size_bytes",
                "container": "backup_container"},
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, posix_opts)]
