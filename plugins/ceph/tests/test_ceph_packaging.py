"""Without the Debian bindings the plugin fails to import with the packages to install, and the shell says so."""

from __future__ import annotations

import subprocess
import sys

BLOCKED = "import sys; sys.modules['rados'] = None; sys.modules['rbd'] = None; "


def test_missing_bindings_name_the_debian_packages() -> None:
    code = BLOCKED + (
        "from ashvault import plugins\n"
        "for kind in (plugins.DRIVERS, plugins.SOURCES):\n"
        "    [info] = [p for p in plugins.discover(kind) if p.name in ('ceph', 'rbd')]\n"
        "    print(info.available, info.error)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("False ") and "python3-rados python3-rbd" in line, line


def test_options_import_without_bindings() -> None:
    code = BLOCKED + "from ashvault_ceph import opts; print(len(opts.list_opts()[0][1]))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 10


def test_cinder_option_names_and_defaults(tmp_path: object) -> None:
    import pathlib

    from ashvault.conf import make_config, register_group
    from ashvault_ceph import opts

    path = pathlib.Path(str(tmp_path)) / "cinder.conf"
    path.write_text("[DEFAULT]\nbackup_ceph_conf = /etc/ceph/other.conf\nbackup_ceph_user = cinder-backup\n"
                    "backup_ceph_pool = bk\nbackup_ceph_chunk_size = 8388608\nbackup_ceph_stripe_unit = 65536\n"
                    "backup_ceph_stripe_count = 4\nbackup_ceph_image_journals = true\n"
                    "backup_ceph_max_snapshots = 3\nrestore_discard_excess_bytes = false\n"
                    "rados_connect_timeout = 7\n")
    conf = make_config([], config_files=[str(path)])
    register_group(conf, opts.GROUP, opts.ceph_opts)
    o = conf[opts.GROUP]
    assert (o.conf, o.user, o.pool, o.chunk_size, o.stripe_unit, o.stripe_count, o.image_journals,
            o.max_snapshots, o.restore_discard_excess_bytes, o.connect_timeout) == (
        "/etc/ceph/other.conf", "cinder-backup", "bk", 8388608, 65536, 4, True, 3, False, 7)
    fresh = make_config([], config_files=[])
    register_group(fresh, opts.GROUP, opts.ceph_opts)
    d = fresh[opts.GROUP]
    assert (d.conf, d.user, d.pool, d.chunk_size, d.stripe_unit, d.stripe_count, d.image_journals,
            d.max_snapshots, d.restore_discard_excess_bytes) == (
        "/etc/ceph/ceph.conf", "cinder", "backups", 128 << 20, 0, 0, False, 0, True)
