"""Operators' habits (issue 19), through the real ``ashvault`` command: a cinder.conf read as it is, the command
grammar of python-openstackclient and cinderclient, scripting, retention and storage accounting."""

from __future__ import annotations

import os
import pathlib
import sqlite3
import subprocess
import sys

from clitools import BIN, Ashvault, MiB, one_line_error, sha256

from ashvault.testing import volumes

GiB = 1 << 30


def run(conf: list[pathlib.Path], *args: str, env: dict[str, str] | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "ashvault")]
    for c in conf:
        cmd += ["--config-file", str(c)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, input=stdin,
                          env={**os.environ, **(env or {})})


def register(av: Ashvault, name: str, size: int = 4 * MiB, seed: int = 1) -> str:
    path = str(av.tmp / f"{name}.img")
    volumes.write_mixed(path, size, seed=seed, run=MiB)
    av.j("volume", "register", name, path)
    return path


CINDER_CONF = """\
[DEFAULT]
state_path = {cinder}/lib
volumes_dir = {cinder}/lib/volumes
lock_path = {cinder}/lib/tmp
my_ip = 127.0.0.1
enabled_backends = lvm
transport_url = rabbit://openstack:RABBIT_PASS@127.0.0.1
auth_strategy = keystone
backup_driver = cinder.backup.drivers.posix.PosixBackupDriver
backup_posix_path = {cinder}/backups
backup_sha_block_size_bytes = 32768
backup_compression_algorithm = zlib
backup_file_size = {file_size}

[database]
connection = mysql+pymysql://cinder:CINDER_DBPASS@127.0.0.1/cinder

[lvm]
volume_driver = cinder.volume.drivers.lvm.LVMVolumeDriver
volume_group = cinder-volumes
"""


def test_a_cinder_conf_as_it_is(tmp_path: pathlib.Path) -> None:
    cinder = tmp_path / "cinder"
    conf = tmp_path / "cinder.conf"
    conf.write_text(CINDER_CONF.format(cinder=cinder, file_size=4 * MiB))
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path)}
    listed = run([conf], "backup", "list", "-f", "json", env=env)
    assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stderr
    path = str(tmp_path / "v.img")
    volumes.write_mixed(path, 8 * MiB, seed=3, run=MiB)
    assert run([conf], "volume", "register", "v", path, env=env).returncode == 0
    made = run([conf], "volume", "create", "new", "--size", "0.01", "-f", "value", "-c", "location", env=env)
    assert made.stdout.startswith(str(tmp_path / "xdg" / "ashvault" / "volumes")), made.stdout + made.stderr
    backup = run([conf], "backup", "create", "v", "-f", "value", "-c", "status", env=env)
    assert backup.stdout.strip() == "available", backup.stderr
    assert not (cinder / "lib").exists(), "nothing of ashvault's under Cinder's state_path or volumes_dir"
    assert sorted(p.name for p in cinder.iterdir()) == ["backups"], "backups go where backup_posix_path says"
    assert (tmp_path / "xdg" / "ashvault" / "ashvault.sqlite").exists()

    # A second file, read after cinder.conf, gives ashvault its own places.
    own = tmp_path / "ashvault.conf"
    own.write_text(f"[DEFAULT]\nashvault_state_path = {tmp_path / 'own'}\n\n[ashvault_database]\n"
                   f"connection = sqlite:///{tmp_path / 'catalog.sqlite'}\n")
    assert run([conf, own], "backup", "list", "-f", "json", env=env).stdout.strip() == "[]"
    assert (tmp_path / "catalog.sqlite").exists() and (tmp_path / "own" / "locks").is_dir()

    # A Cinder-sized object would cost gigabytes of memory: refused in one line, and nothing recorded.
    conf.write_text(CINDER_CONF.format(cinder=cinder, file_size=1999994880))
    refused = run([conf], "backup", "create", "v", env=env)
    assert refused.returncode == 1
    line = refused.stderr.strip()
    assert line.count("\n") == 0 and "backup_file_size" in line and "1999994880" in line and "67108864" in line
    assert len(run([conf], "backup", "list", "-f", "json", env=env).stdout.strip().splitlines()) > 1
    statuses = [b.split()[-1] for b in run([conf], "backup", "list", "-f", "value", "-c", "id", "-c", "status",
                                           env=env).stdout.splitlines()]
    assert statuses == ["available"], "the refused backup left no record"


def test_osc_restore_and_list_grammar(av: Ashvault) -> None:
    path = register(av, "v")
    full = av.j("backup", "create", "v", "--name", "full")
    volumes.mutate(path, percent=5, seed=4)
    inc = av.j("backup", "create", "v", "--name", "inc", "--incremental")
    third = av.j("backup", "create", "v", "--name", "third", "--incremental")

    made = av.j("backup", "restore", "inc", "restored")
    assert made["volume_created"] and made["volume_name"] == "restored" and made["size"] == 4 * MiB
    assert sha256(made["volume_location"]) == sha256(path)
    again = av("backup", "restore", "full", "restored", ok=False)
    assert "use --force" in one_line_error(again) and again.rc == 1
    over = av.j("backup", "restore", "full", "restored", "--force")
    assert not over["volume_created"] and over["volume_id"] == made["volume_id"]

    rows = av.j("backup", "list")
    assert [r["name"] for r in rows] == ["full", "inc", "third"]
    assert [r["parent_id"] for r in rows] == [None, full["id"], inc["id"]]
    assert rows[0]["size"] == 4 * MiB, "exact bytes in json"
    assert rows[0]["created_at"].endswith("+00:00")
    table = av("backup", "list").out
    assert "| parent_id" in table and " UTC |" in table
    assert av("backup", "list", "-f", "value", "-c", "size").out.split() == [str(4 * MiB)] * 3
    assert [ln.split("|")[5].strip() for ln in table.splitlines()[3:6]] == ["1", "1", "1"], "whole GiB, as OSC"
    assert [r["name"] for r in av.j("backup", "list", "--name", "inc")] == ["inc"]
    assert [r["id"] for r in av.j("backup", "list", "--limit", "2")] == [full["id"], inc["id"]]
    assert [r["id"] for r in av.j("backup", "list", "--marker", inc["id"], "--limit", "5")] == [third["id"]]
    assert av.j("backup", "list", "--limit", "0") == []
    assert "not in this listing" in one_line_error(av("backup", "list", "--marker", "nope", ok=False))
    long = {r["name"]: r for r in av.j("backup", "list", "--long")}
    assert {"description", "container", "protected", "properties", "unique_bytes", "shared_bytes"} <= set(long["inc"])
    cinder = av.j("backup-list", "--volume-id", "v", "--limit", "1")
    assert [r["id"] for r in cinder] == [full["id"]]


def test_set_unset_protect_reset_state_and_cinder_spellings(av: Ashvault) -> None:
    register(av, "v")
    b = av.j("backup", "create", "v", "--name", "b")
    got = av.j("backup", "set", "b", "--name", "renamed", "--description", "weekly", "--property", "tier=gold",
               "--property", "owner=ops", "--protect")
    assert (got["name"], got["description"], got["protected"]) == ("renamed", "weekly", True)
    assert got["properties"] == {"tier": "gold", "owner": "ops"}
    assert av.j("backup", "unset", "renamed", "--property", "tier")["properties"] == {"owner": "ops"}
    assert "has no property" in one_line_error(av("backup", "unset", "renamed", "--property", "tier", ok=False))
    usage = av("backup", "set", "renamed", "--property", "novalue", ok=False)
    assert usage.rc == 2

    refused = av("backup", "delete", "renamed", ok=False)
    assert "protected" in one_line_error(refused) and refused.rc == 1
    assert av.j("backup", "show", b["id"])["status"] == "available"

    assert av.j("backup-update", "renamed", "--name", "cinder-name", "--metadata", "k=v")["name"] == "cinder-name"
    assert av.j("backup", "show", "cinder-name")["properties"] == {"owner": "ops", "k": "v"}

    # Reset-state: an administrator's repair, only to a state the backend agrees with.
    assert av.j("backup-reset-state", "--state", "error", "cinder-name")[0]["status"] == "error"
    assert av.j("backup", "show", "cinder-name")["fail_reason"] == "status reset by an administrator"
    assert av.j("backup", "reset-state", "cinder-name")[0]["status"] == "available"
    assert av.j("backup", "verify", "cinder-name")["result"] == "ok"
    manifest = next(av.backups.rglob("manifest"))
    manifest.rename(manifest.with_name("aside"))
    listed = av("backup", "list", "--long", "-f", "json")
    assert listed.json()[0]["unique_bytes"] == b["stored_bytes"] and "cannot be read" in listed.err
    av.j("backup", "reset-state", "--state", "error", "cinder-name")
    stuck = av("backup", "reset-state", "cinder-name", ok=False)
    assert "cannot be available" in stuck.err and stuck.rc == 1
    assert av.j("backup", "show", "cinder-name")["status"] == "error"
    manifest.with_name("aside").rename(manifest)
    av.j("backup", "set", "cinder-name", "--state", "available")

    exported = av.j("backup-export", "cinder-name")
    (av.tmp / "site2").mkdir()
    site2 = Ashvault(av.tmp / "site2", f"[backup_posix]\npath = {av.backups}\n")
    imported = site2.j("backup-import", exported["backup_service"], exported["backup_url"])
    assert imported["id"] == b["id"] and imported["status"] == "available"
    assert site2.j("backup", "verify", b["id"])["result"] == "ok"


def test_delete_several_tries_every_one(av: Ashvault) -> None:
    register(av, "v")
    ids = [av.j("backup", "create", "v")["id"] for _ in range(3)]
    av.j("backup", "set", ids[1], "--protect")
    res = av("backup", "delete", ids[0], "missing", ids[1], ids[2], ok=False)
    assert res.rc == 1
    lines = res.err.strip().splitlines()
    assert lines[-1] == "ashvault: error: 2 of 4 backups failed to delete"
    assert any("'missing' not found" in ln for ln in lines) and any("protected" in ln for ln in lines)
    left = av.j("backup", "list")
    assert [b["id"] for b in left] == [ids[1]], "the others went although some failed"


def _set_taken(av: Ashvault, backup_id: str, when: str) -> None:
    """Back-date a backup, as if it had been taken at ``when`` (UTC)."""
    with sqlite3.connect(av.state / "ashvault.sqlite") as db:
        db.execute("UPDATE backups SET data_timestamp = ?, created_at = ? WHERE id = ?",
                   (when + "+00:00", when + "+00:00", backup_id))


def test_prune_keeps_what_the_rules_say(av: Ashvault) -> None:
    path = register(av, "v")
    other = register(av, "w", seed=9)
    days = ["2026-01-05 10:00:00", "2026-02-10 10:00:00", "2026-02-11 09:00:00", "2026-02-11 18:00:00",
            "2026-02-12 08:00:00"]
    ids = []
    for n, day in enumerate(days):
        volumes.mutate(path, percent=5, seed=20 + n)
        ids.append(av.j("backup", "create", "v", *(["--incremental"] if n else []))["id"])
        _set_taken(av, ids[-1], day)
    want = sha256(path)
    w_id = av.j("backup", "create", "w")["id"]
    av.j("backup", "set", ids[0], "--protect")

    dry = av.j("backup", "prune", "--volume", "v", "--keep-daily", "2", "--dry-run")
    actions = {r["id"]: r["action"] for r in dry}
    assert actions == {ids[4]: "keep", ids[3]: "keep", ids[2]: "would delete", ids[1]: "would delete",
                       ids[0]: "keep"}
    assert {r["id"]: r["kept_by"] for r in dry}[ids[0]] == "protected"
    assert len(av.j("backup", "list")) == 6, "a dry run deletes nothing"

    done = av.j("backup", "prune", "--keep-last", "1", "--keep-monthly", "2")
    acted = {r["id"]: r["action"] for r in done}
    assert acted[w_id] == "keep", "each volume on its own"
    assert [acted[i] for i in ids] == ["keep", "deleted", "deleted", "deleted", "keep"]
    assert {b["id"] for b in av.j("backup", "list")} == {ids[0], ids[4], w_id}
    restored = av.j("backup", "restore", ids[4], "check")
    assert sha256(restored["volume_location"]) == want, "the chain's newest restores after its middle went"
    assert av.j("backup", "verify", ids[0])["result"] == "ok"
    assert sha256(av.j("backup", "restore", w_id)["volume_location"]) == sha256(other)
    assert "--keep-" in one_line_error(av("backup", "prune", ok=False))


def _repository_bytes(root: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_storage_accounting_matches_the_repository(av: Ashvault) -> None:
    path = register(av, "v", size=8 * MiB)
    register(av, "w", size=4 * MiB, seed=5)
    full = av.j("backup", "create", "v")
    volumes.mutate(path, percent=10, seed=6)
    mid = av.j("backup", "create", "v", "--incremental")
    volumes.mutate(path, percent=10, seed=7)
    last = av.j("backup", "create", "v", "--incremental")
    av.j("backup", "create", "w")

    def check() -> dict[str, dict[str, int]]:
        usage = {(r["scope"], r["name"]): r["stored_bytes"] for r in av.j("backup", "usage")}
        real = _repository_bytes(av.backups / "volumebackups")
        assert usage[("container", "posix:volumebackups")] == real
        assert usage[("volume", "v")] + usage[("volume", "w")] == real
        assert av.j("volume", "show", "v")["backup_stored_bytes"] == usage[("volume", "v")]
        return {r["id"]: r for r in av.j("backup", "list", "--long", "--volume", "v")}

    rows = check()
    assert all(rows[b]["unique_bytes"] > 0 for b in rows), "each backup holds its own manifest and changes"
    assert rows[full["id"]]["shared_bytes"] > 0 and rows[last["id"]]["shared_bytes"] > 0
    av.j("backup", "delete", mid["id"])
    rows = check()
    assert set(rows) == {full["id"], last["id"]}
    shown = av.j("backup", "show", last["id"])
    assert (shown["unique_bytes"], shown["shared_bytes"]) == (rows[last["id"]]["unique_bytes"],
                                                               rows[last["id"]]["shared_bytes"])
    av.j("backup", "delete", full["id"])
    rows = check()
    assert rows[last["id"]]["shared_bytes"] == 0, "nothing left to share with"


def test_scripting_exit_codes_pipes_debug_and_verbose(av: Ashvault) -> None:
    register(av, "v")
    missing = av("backup", "show", "nope", ok=False)
    assert missing.rc == 1, "not found is an error, not a usage error"
    assert av("backup", "list", "--limit", "x", ok=False).rc == 2
    assert av("no-such-command", ok=False).rc == 2

    debug = av("--debug", "backup", "show", "nope", ok=False)
    assert "Traceback (most recent call last)" in debug.err and "BackupNotFound" in debug.err
    assert debug.err.strip().splitlines()[-1] == "ashvault: error: backup 'nope' not found"
    assert av("backup", "list").err == ""
    verbose = av("-v", "backup", "list")
    assert "configuration files:" in verbose.err and "catalog on sqlite" in verbose.err
    assert "found extension" not in verbose.err, "-v is ashvault's own lines, not the libraries'"

    # The reader of the pipe is gone (ashvault volume list | head -1 once head has exited): end quietly.
    read, write = os.pipe()
    os.close(read)
    piped = subprocess.run([str(BIN / "ashvault"), "--config-file", str(av.conf), "volume", "list"], stdout=write,
                           stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(write)
    assert piped.stderr == "" and piped.returncode in (0, 141)
    head = subprocess.run(f"'{BIN / 'ashvault'}' --config-file '{av.conf}' volume list -f value | head -1",
                          shell=True, capture_output=True, text=True, timeout=60)
    assert head.stdout.split()[1] == "v" and head.stderr == ""

    shell = [str(BIN / "ashvault"), "--config-file", str(av.conf)]
    failed = subprocess.run(shell, input="volume list -f value -c name\nbackup show nope\n", capture_output=True,
                            text=True, timeout=60)
    assert failed.returncode == 1 and failed.stdout.split() == ["v"]
    ok = subprocess.run(shell, input="backup show nope\nvolume list -f value -c name\n", capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, "the last command's status"
    usage = subprocess.run(shell, input="backup list --limit x\n", capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2


def test_readme_shows_both_spellings_retention_and_exit_codes() -> None:
    readme = " ".join((pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text().split(" "))
    flat = " ".join(readme.split())
    quick = readme[readme.index("## Quick start"):readme.index("## Configuration")]
    for needle in ("ashvault backup restore", "backup-create", "backup-reset-state", "backup prune --keep-",
                   "backup set", "Exit status"):
        assert needle in quick, needle
    assert "[ashvault_database]" in readme and "not on a package index" in flat
    assert "pip install ./core ./cli ./plugins/posix_nfs_gluster" in readme
    assert sys.version_info >= (3, 11)
