"""Installing only what one needs, and configuring the way a Cinder operator already does."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from clitools import ROOT, Ashvault, MiB, one_line_error, sha256

from ashvault.testing import volumes


def test_core_and_cli_alone_offer_no_driver(core_only_venv: pathlib.Path, tmp_path: pathlib.Path) -> None:
    conf = tmp_path / "a.conf"
    conf.write_text(f"[DEFAULT]\nashvault_state_path = {tmp_path / 'state'}\n")
    exe = str(core_only_venv / "bin" / "ashvault")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, "--config-file", str(conf), *args], capture_output=True, text=True,
                              env={**os.environ, "PATH": f"{core_only_venv / 'bin'}:/usr/bin:/bin"})

    listed = run("driver", "list", "-f", "json")
    assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stdout + listed.stderr
    assert run("volume", "create", "v", "--size", "0.01").returncode == 0
    failed = run("backup", "create", "v")
    assert failed.returncode != 0
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and "install ashvault-posix: pip install ./plugins/posix_nfs_gluster" in lines[0], lines
    swift = run("driver", "show", "swift")
    assert swift.returncode != 0 and "pip install ./plugins/swift" in swift.stderr


def test_cinder_option_names_and_driver_path(tmp_path: pathlib.Path) -> None:
    av = Ashvault(tmp_path)
    cinder_dir = tmp_path / "cinder-style"
    av.conf.write_text(
        "[DEFAULT]\n"
        f"ashvault_state_path = {av.state}\n"
        "backup_driver = cinder.backup.drivers.posix.PosixBackupDriver\n"
        f"backup_posix_path = {cinder_dir}\n"
        "backup_file_size = 1048576\n"
        "backup_sha_block_size_bytes = 32768\n"
        "backup_compression_algorithm = zlib\n"
        "backup_container = mybackups\n"
    )
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 8 * MiB, seed=61, run=MiB, zero=0, text=1)
    av.j("volume", "register", "v", path)
    b = av.j("backup", "create", "v")
    assert b["service"] == "posix" and b["container"] == "mybackups"
    objects = sorted((cinder_dir / "mybackups").rglob("d*"))
    assert len(objects) == 8, "8 MiB in 1 MiB objects (backup_file_size)"
    assert all(o.stat().st_size < 600 * 1024 for o in objects), "text compresses with zlib"
    shown = av.j("driver", "show", "posix")
    assert shown["options"]["object_size"] == 1048576 and shown["options"]["block_size"] == 32768
    assert sha256(av.j("backup", "restore", b["id"])["volume_location"]) == sha256(path)
    av.conf.write_text(av.conf.read_text().replace("cinder.backup.drivers.posix.PosixBackupDriver",
                                                   "cinder.backup.drivers.s3.S3BackupDriver"))
    assert "install the plugin that provides it" in one_line_error(av("backup", "create", "v", ok=False))
    av.conf.write_text(av.conf.read_text().replace("cinder.backup.drivers.s3.S3BackupDriver", "a.b.c"))
    assert "backup_driver 'a.b.c'" in one_line_error(av("backup", "create", "v", ok=False))


def test_no_config_uses_one_state_directory(tmp_path: pathlib.Path) -> None:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path)}
    env.pop("ASHVAULT_CONFIG_FILE", None)
    exe = str(pathlib.Path(sys.executable).parent / "ashvault")
    made = subprocess.run([exe, "volume", "create", "v", "--size", "0.01", "-f", "value", "-c", "location"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    state = tmp_path / "data" / "ashvault"
    assert made.stdout.strip().startswith(str(state / "volumes"))
    b = subprocess.run([exe, "backup", "create", "v", "-f", "value", "-c", "status"], capture_output=True,
                       text=True, env=env, cwd=tmp_path)
    assert b.stdout.strip() == "available", b.stderr
    assert (state / "ashvault.sqlite").exists() and (state / "backup" / "volumebackups").is_dir()


def test_sample_config_is_up_to_date(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "sample.conf"
    gen = pathlib.Path(sys.executable).parent / "oslo-config-generator"
    proc = subprocess.run([str(gen), "--config-file", str(ROOT / "etc" / "ashvault" / "ashvault-config-generator.conf"),
                           "--output-file", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    checked_in = (ROOT / "etc" / "ashvault" / "ashvault.conf.sample").read_text()
    assert out.read_text() == checked_in, "regenerate etc/ashvault/ashvault.conf.sample (see README)"


def test_record_export_import_on_another_site(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a").mkdir()
    site_a = Ashvault(tmp_path / "a")
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 16 * MiB, seed=71, run=MiB)
    site_a.j("volume", "register", "v", path)
    b = site_a.j("backup", "create", "v", "--name", "shipped")
    rec = site_a.j("backup", "record", "export", "shipped")
    (tmp_path / "b").mkdir()
    site_b = Ashvault(tmp_path / "b")
    site_b.backups = site_a.backups
    site_b.write_conf()
    imported = site_b.j("backup", "record", "import", rec["backup_service"], rec["backup_url"])
    assert imported["id"] == b["id"] and imported["status"] == "available"
    assert sha256(site_b.j("backup", "restore", b["id"])["volume_location"]) == sha256(path)
    again = site_b("backup", "record", "import", rec["backup_service"], rec["backup_url"], ok=False)
    assert "already exists" in one_line_error(again)
    assert "not valid" in one_line_error(site_b("backup", "record", "import", "posix", "bm90IGpzb24=", ok=False))


def test_every_distribution_agrees_with_the_root_setup_cfg() -> None:
    import configparser

    root = configparser.ConfigParser()
    root.read(ROOT / "setup.cfg")
    dists = [ROOT / "core", ROOT / "cli", *sorted(p.parent for p in (ROOT / "plugins").glob("*/setup.cfg"))]
    assert len(dists) >= 3
    for dist in dists:
        cfg = configparser.ConfigParser()
        cfg.read(dist / "setup.cfg")
        where = dist.relative_to(ROOT)
        for key in ("version", "license"):
            assert cfg["metadata"][key] == root["metadata"][key], f"{where}: {key}"
        shared = {s.strip() for s in root["options"]["python_requires"].split(",")}
        own = {s.strip() for s in cfg["options"]["python_requires"].split(",")}
        assert shared <= own, f"{where}: python_requires may narrow the shared one, never drop it"
        requires = cfg["options"].get("install_requires", "").split()
        if dist.name != "core":
            assert root["options"]["core_requirement"] in requires, f"{where} must require the core's minor version"
        assert (dist / "pyproject.toml").is_file(), where
