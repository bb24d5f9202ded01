"""A throw-away single-node Ceph cluster (mon, mgr, one OSD, cephx) on 127.0.0.1, all of its state in one directory.

    python plugins/ceph/ci/cluster.py up DIR [--objectstore memstore|bluestore] [--no-mgr]
    python plugins/ceph/ci/cluster.py down DIR

``up`` prints ``CEPH_CONF=DIR/ceph.conf``; the pools ``volumes`` and ``backups`` exist and are rbd-initialised, and
the users ``client.admin``, ``client.ashvault`` (``profile rbd`` on both pools) and ``client.norights`` (no OSD
rights) have their keys in ``DIR/keyring``. ``down`` kills the daemons by the PIDs they wrote (after checking each is
still that daemon of this cluster) and removes DIR. Each start gets a new fsid and a free mon port, so clusters can
run side by side. The recipe and its pitfalls: shared/reference/services.md, section A.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

DAEMONS = (("mon", "a"), ("mgr", "x"), ("osd", "0"))
POOLS = ("volumes", "backups")
# Modules the mgr may skip loading (start-up drops from about 10 s to 4 s); never an always-on one.
MGR_SKIP = ("alerts,diskprediction_local,influx,insights,iostat,localpool,mirroring,nfs,osd_perf_query,osd_support,"
            "prometheus,restful,selftest,snap_schedule,stats,telegraf,test_orchestrator,zabbix,cephadm,dashboard,"
            "k8sevents,rook")

CONF = """[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{port}]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {dir}/keyring
run dir = {dir}/run
crash dir = {dir}/crash
osd objectstore = {objectstore}
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool delete = true
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 1
mon data avail crit = 0
mon mgr mkfs grace = 31536000
paxos propose interval = 0.1
mgr stats period = 1
osd mon report interval = 1
mgr tick period = 1
mgr disabled modules = {mgr_skip}
log to syslog = false
log to stderr = false
err to stderr = true
[client]
log file = /dev/null
client mount timeout = 30
rados mon op timeout = 60
rados osd op timeout = 60
[mon]
mon data = {dir}/mon.$id
log file = {dir}/log/$name.log
pid file = {dir}/run/$name.pid
[mgr]
mgr data = {dir}/mgr.$id
log file = {dir}/log/$name.log
pid file = {dir}/run/$name.pid
[osd]
osd data = {dir}/osd.$id
log file = {dir}/log/$name.log
pid file = {dir}/run/$name.pid
osd crush initial weight = 1
memstore device bytes = {osd_bytes}
bluestore block create = true
bluestore block size = {osd_bytes}
bluestore fsck on mount = false
osd memory target = 1073741824
"""

KEYS = (
    ("mon.", ["--cap", "mon", "allow *"]),
    ("client.admin", ["--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *",
                      "--cap", "mds", "allow *"]),
    ("osd.0", ["--cap", "mon", "allow profile osd", "--cap", "mgr", "allow profile osd", "--cap", "osd", "allow *"]),
    ("mgr.x", ["--cap", "mon", "allow profile mgr", "--cap", "osd", "allow *", "--cap", "mds", "allow *"]),
    ("client.ashvault", ["--cap", "mon", "profile rbd", "--cap", "osd",
                         "profile rbd pool=volumes, profile rbd pool=backups", "--cap", "mgr", "profile rbd"]),
    ("client.norights", ["--cap", "mon", "allow r"]),
)


class ClusterError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], env: dict[str, str], log: str) -> None:
    with open(log, "ab") as err:
        proc = subprocess.run(cmd, env=env, stdout=err, stderr=err, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode:
        raise ClusterError(f"{' '.join(cmd[:3])} failed with status {proc.returncode}; see {log}")


class Cluster:
    """One cluster in ``directory``. ``start`` brings it up and waits until RBD I/O works; ``stop`` removes it."""

    def __init__(self, directory: str, *, objectstore: str = "memstore", mgr: bool = True,
                 osd_bytes: int = 3 << 30) -> None:
        self.dir = os.path.abspath(directory)
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.keyring = os.path.join(self.dir, "keyring")
        self.objectstore = objectstore
        self.with_mgr = mgr
        self.osd_bytes = osd_bytes
        self.env = dict(os.environ, CEPH_CONF=self.conf)

    # bring-up

    def start(self, timeout: float = 120.0) -> Cluster:
        try:
            self._start(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _start(self, timeout: float) -> None:
        if os.path.exists(self.dir) and os.listdir(self.dir):
            raise ClusterError(f"{self.dir} is not empty")
        for sub in ("run", "log", "crash", "mon.a", "mgr.x", "osd.0"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        fsid = str(uuid.uuid4())
        port = _free_port()
        with open(self.conf, "w") as f:
            f.write(CONF.format(fsid=fsid, port=port, dir=self.dir, objectstore=self.objectstore,
                                mgr_skip=MGR_SKIP, osd_bytes=self.osd_bytes))
        log = os.path.join(self.dir, "log", "setup.log")
        first = True
        for name, caps in KEYS:
            _run(["ceph-authtool", *(["--create-keyring"] if first else []), "--gen-key", "-n", name, *caps,
                  self.keyring], self.env, log)
            first = False
        os.chmod(self.keyring, 0o600)
        monmap = os.path.join(self.dir, "monmap")
        _run(["monmaptool", "--create", "--clobber", "--fsid", fsid, "--addv", "a", f"[v2:127.0.0.1:{port}]",
              monmap], self.env, log)
        _run(["ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", self.keyring], self.env, log)
        _run(["ceph-mon", "-i", "a"], self.env, log)
        if self.with_mgr:
            _run(["ceph-mgr", "-i", "x"], self.env, log)
        deadline = time.monotonic() + timeout
        import rados

        cl = rados.Rados(conffile=self.conf, rados_id="admin")
        cl.connect(timeout=int(timeout))
        try:
            osd_uuid = str(uuid.uuid4())
            out = self._mon(cl, {"prefix": "osd new", "uuid": osd_uuid})
            if out.strip() not in (b"0", b""):
                raise ClusterError(f"osd new answered {out!r}")
            _run(["ceph-osd", "-i", "0", "--mkfs", "--osd-uuid", osd_uuid], self.env, log)
            self.start_osd()
            while True:
                dump = json.loads(self._mon(cl, {"prefix": "osd dump", "format": "json"}) or b"{}")
                if any(o.get("up") and o.get("in") for o in dump.get("osds", [])):
                    break
                if time.monotonic() > deadline:
                    raise ClusterError("the OSD did not come up; see " + os.path.join(self.dir, "log"))
                time.sleep(0.1)
            import rbd

            for pool in POOLS:
                self._mon(cl, {"prefix": "osd pool create", "pool": pool, "pg_num": 8})
                with cl.open_ioctx(pool) as io:
                    io.application_enable("rbd")
                    rbd.RBD().pool_init(io, False)
        finally:
            cl.shutdown()

    def start_osd(self) -> None:
        """Start (or restart, after :meth:`kill_osd`) the OSD daemon."""
        _run(["ceph-osd", "-i", "0"], self.env, os.path.join(self.dir, "log", "setup.log"))

    @staticmethod
    def _mon(cl: object, cmd: dict[str, object]) -> bytes:
        ret, out, err = cl.mon_command(json.dumps(cmd), b"")  # type: ignore[attr-defined]
        if ret != 0:
            raise ClusterError(f"{cmd['prefix']} failed: {err}")
        return bytes(out)

    # tear-down

    def _pid(self, kind: str, ident: str) -> int | None:
        try:
            with open(os.path.join(self.dir, "run", f"{kind}.{ident}.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            return None
        mine = f"CEPH_CONF={self.conf}".encode() in environ
        return pid if mine and os.path.basename(argv[0]) == f"ceph-{kind}".encode() else None

    @staticmethod
    def _gone(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    def kill_daemon(self, kind: str, ident: str, timeout: float = 10.0) -> None:
        """SIGKILL one daemon of this cluster (never a clean stop: a memstore OSD would dump its RAM to disk)."""
        pid = self._pid(kind, ident)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while not self._gone(pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def kill_osd(self) -> None:
        self.kill_daemon("osd", "0")

    def kill(self) -> None:
        for kind, ident in reversed(DAEMONS):
            self.kill_daemon(kind, ident)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("dir")
    parser.add_argument("--objectstore", default="memstore", choices=["memstore", "bluestore"])
    parser.add_argument("--no-mgr", action="store_true")
    args = parser.parse_args(argv)
    cluster = Cluster(args.dir, objectstore=args.objectstore, mgr=not args.no_mgr)
    if args.action == "down":
        cluster.stop()
        return 0
    try:
        cluster.start()
    except (ClusterError, OSError) as exc:
        print(f"ceph cluster: {exc}", file=sys.stderr)
        return 1
    print(f"CEPH_CONF={cluster.conf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
