"""Options of the ceph driver (``[backup_ceph]``) and of the rbd volume source (``[rbd]``).

Imports nothing but oslo.config, so the sample configuration never needs the Ceph bindings. Every Cinder option of
its ceph backup driver is accepted under its ``[DEFAULT] backup_ceph_*`` name with Cinder's default.
"""

from __future__ import annotations

from oslo_config import cfg

from ashvault.conf import chunked_driver_opts

GROUP = "backup_ceph"
SOURCE_GROUP = "rbd"


def _cinder(name: str) -> list[cfg.DeprecatedOpt]:
    return [cfg.DeprecatedOpt(name, group="DEFAULT")]


ceph_opts = [
    cfg.StrOpt("conf", default="/etc/ceph/ceph.conf", deprecated_opts=_cinder("backup_ceph_conf"),
               help="Ceph configuration file of the cluster holding the backups."),
    cfg.StrOpt("user", default="cinder", deprecated_opts=_cinder("backup_ceph_user"),
               help="Cephx user (without 'client.') the driver connects as; its key comes from the keyring named "
                    "in the configuration file or /etc/ceph/ceph.client.<user>.keyring."),
    cfg.StrOpt("pool", default="backups", deprecated_opts=_cinder("backup_ceph_pool"),
               help="Pool of the backup images and objects, used when a backup names no container."),
    cfg.IntOpt("chunk_size", default=128 * 1024 * 1024, min=4096, deprecated_opts=_cinder("backup_ceph_chunk_size"),
               help="Largest single read or write, in bytes, when copying RBD data to or from a backup image."),
    cfg.IntOpt("stripe_unit", default=0, min=0, deprecated_opts=_cinder("backup_ceph_stripe_unit"),
               help="RBD stripe unit of new backup images, in bytes; 0 keeps the image's object size."),
    cfg.IntOpt("stripe_count", default=0, min=0, deprecated_opts=_cinder("backup_ceph_stripe_count"),
               help="RBD stripe count of new backup images; 0 means 1."),
    cfg.BoolOpt("image_journals", default=False, deprecated_opts=_cinder("backup_ceph_image_journals"),
                help="Enable the journaling feature on new backup images (for rbd-mirror)."),
    cfg.IntOpt("max_snapshots", default=0, min=0, deprecated_opts=_cinder("backup_ceph_max_snapshots"),
               help="Backup snapshots kept on an RBD source volume; older ones are removed after each backup, and "
                    "an incremental whose parent's snapshot is gone becomes a full backup. 0 keeps them all."),
    cfg.BoolOpt("restore_discard_excess_bytes", default=True, deprecated_opts=_cinder("restore_discard_excess_bytes"),
                help="When restoring to a volume larger than the backup, make the bytes past the backup's end read "
                     "as zeros."),
    cfg.IntOpt("connect_timeout", default=30, min=1, deprecated_opts=_cinder("rados_connect_timeout"),
               help="Seconds to wait for the cluster when connecting; an unreachable cluster is an error, not a "
                    "hang."),
    cfg.IntOpt("op_timeout", default=30, min=1,
               help="Seconds before a single RADOS operation that gets no answer (a dead OSD) fails the job."),
    cfg.StrOpt("namespace", default="ashvault",
               help="RADOS namespace, inside the pool, of the objects of backups made by the chunked engine "
                    "(sources that are not RBD images)."),
    *[o for o in chunked_driver_opts(cinder={}, container=None) if o.name != "container"],
]

rbd_opts = [
    cfg.StrOpt("ceph_conf", default="/etc/ceph/ceph.conf", deprecated_opts=[cfg.DeprecatedOpt("rbd_ceph_conf")],
               help="Ceph configuration file of the cluster holding rbd: volumes."),
    cfg.StrOpt("user", default="cinder", deprecated_opts=[cfg.DeprecatedOpt("rbd_user")],
               help="Cephx user (without 'client.') that reads and writes rbd: volumes."),
    cfg.IntOpt("connect_timeout", default=30, min=1, deprecated_opts=[cfg.DeprecatedOpt("rados_connect_timeout")],
               help="Seconds to wait for the cluster when connecting."),
    cfg.IntOpt("op_timeout", default=30, min=1,
               help="Seconds before a single RBD operation that gets no answer fails the job."),
    cfg.IntOpt("max_snapshots", default=0, min=0,
               help="Backup snapshots (backup.*.snap.*) kept on an rbd: volume backed up by a driver other than "
                    "ceph; the newest serves the next incremental's changed-extent list. 0 keeps them all."),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, ceph_opts), (SOURCE_GROUP, rbd_opts)]
