"""The catalog on a real PostgreSQL (scripts/services/postgresql.sh brings it up): the same commands work, and
concurrent commands on one catalog never both win a transition."""

from __future__ import annotations

import pathlib

from clitools import Ashvault, MiB, register_volumes, sha256

from ashvault.testing import volumes


def test_catalog_on_postgresql(tmp_path: pathlib.Path, pg_url: str) -> None:
    av = Ashvault(tmp_path, f"[ashvault_database]\nconnection = {pg_url}\n")
    paths = register_volumes(av, tmp_path, 2, 24 * MiB, seed=80)
    assert not (av.state / "ashvault.sqlite").exists(), "the catalog went to PostgreSQL"
    procs = [av.popen("backup", "create", f"v{n}") for n in range(2)]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    volumes.mutate(paths[0], percent=5, seed=90)
    inc = av.j("backup", "create", "v0", "--incremental")
    assert inc["is_incremental"] and inc["status"] == "available"
    assert sha256(av.j("backup", "restore", inc["id"])["volume_location"]) == sha256(paths[0])
    statuses = sorted(b["status"] for b in av.j("backup", "list"))
    assert statuses == ["available"] * 3
    shown = av.j("driver", "show", "posix")
    assert "ashvault_test:" not in str(shown)
