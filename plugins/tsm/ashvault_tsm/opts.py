"""Options of the tsm driver (``[backup_tsm]``). Imports nothing but oslo.config.

Cinder's three TSM options are accepted under their ``[DEFAULT] backup_tsm_*`` names with Cinder's defaults.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "backup_tsm"


def _cinder(name: str) -> list[cfg.DeprecatedOpt]:
    return [cfg.DeprecatedOpt(name, group="DEFAULT")]


tsm_opts = [
    cfg.StrOpt("volume_prefix", default="backup", deprecated_opts=_cinder("backup_tsm_volume_prefix"),
               help="Prefix of each backup's name on the TSM server: a backup is filed under "
                    "<backup_path>/<volume_prefix>-<backup id>."),
    cfg.StrOpt("password", default="password", secret=True, deprecated_opts=_cinder("backup_tsm_password"),
               help="The TSM node's password. It reaches dsmc in a private options file (mode 0600, removed after "
                    "each call), never on its command line. Empty: dsmc uses its stored password "
                    "(passwordaccess generate)."),
    cfg.BoolOpt("compression", default=True, deprecated_opts=_cinder("backup_tsm_compression"),
                help="Ask dsmc to compress data before sending it (-compression=yes)."),
    cfg.StrOpt("dsmc_path", default="dsmc",
               help="The dsmc executable: an absolute path, or a name looked up on PATH when each command runs."),
    cfg.StrOpt("servername", default="",
               help="Server stanza of dsm.sys to use (-servername=); empty: the one the options file names."),
    cfg.StrOpt("optfile", default="",
               help="Client options file (dsm.opt) whose options apply to every call; empty: $DSM_CONFIG, else "
                    "dsmc's own default."),
    cfg.StrOpt("backup_path", default="",
               help="Directory of the hard link each backup is made through (TSM files a backup under that "
                    "link's path, so every backup is its own TSM object). It must be on the volume's file "
                    "system: for block devices a directory of /dev. Empty: the volume's own directory, as Cinder "
                    "did (/dev for block devices)."),
    cfg.IntOpt("timeout", default=86400, min=1, deprecated_opts=_cinder("backup_tsm_timeout"),
               help="Seconds after which a dsmc call that has not finished is stopped and the job fails."),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, tsm_opts)]
