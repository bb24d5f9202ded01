"""A GlusterFS volume and an NFS server on 127.0.0.1 for the nfs and glusterfs drivers' tests and benchmark.

Both run from a private working directory, are started and stopped by the PIDs recorded here (never by name),
and follow services.md section B. ``Gluster``: glusterd with its own working directory and a one-brick volume,
mounted through the real FUSE client by ``mount -t glusterfs``. ``Ganesha``: rpcbind in a private network
namespace (so nothing listens on the host's port 111) and nfs-ganesha's VFS FSAL exporting a directory over
NFSv3; the userspace client ``nfs_fuse.py`` next to this file mounts it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
NFS_FUSE = os.path.join(HERE, "nfs_fuse.py")


def _wait(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} within {timeout:.0f} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _stop(pid: int | None, timeout: float = 10) -> None:
    if not pid or not _alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def umount(path: str) -> None:
    """Unmount ``path`` if something is mounted there (lazily, so a dead FUSE server never blocks it)."""
    if os.path.ismount(path) or _in_mountinfo(path):
        subprocess.run(["umount", "-l", path], capture_output=True, check=False)


def _in_mountinfo(path: str) -> bool:
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def brick_host() -> str:
    """A name other than localhost that resolves to 127.0.0.1: the gluster CLI refuses 127.0.0.1 itself."""
    host = socket.gethostname()
    try:
        if socket.gethostbyname(host) == "127.0.0.1":
            return host
    except OSError:
        pass
    with open("/etc/hosts", "a") as f:
        f.write("127.0.0.1 gluster-lo\n")
    return "gluster-lo"


class Gluster:
    """glusterd on 127.0.0.1:24007 with its state under ``base``, and one-brick volumes made on request."""

    def __init__(self, base: str, port: int = 24007) -> None:
        self.base = os.path.abspath(base)
        self.port = port
        self.pid: int | None = None
        self.volumes: dict[str, str] = {}

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = ["gluster", "--mode=script", f"--glusterd-sock={self.base}/run/glusterd.socket",
               f"--log-file={self.base}/log/cli.log", *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if check and res.returncode:
            raise RuntimeError(f"gluster {' '.join(args)}: {(res.stderr or res.stdout).strip()}")
        return res

    def up(self, volume: str = "vol") -> None:
        if not shutil.which("glusterd"):
            raise RuntimeError("glusterd is not installed (plugins/posix_nfs_gluster/ci/install.sh)")
        if _listening(self.port):
            raise RuntimeError(f"port {self.port} is taken: another glusterd runs")
        for d in ("wd", "run", "log", "brick"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        vol = os.path.join(self.base, "glusterd.vol")
        with open(vol, "w") as f:
            f.write(f"""volume management
    type mgmt/glusterd
    option working-directory {self.base}/wd
    option run-directory {self.base}/run
    option glusterd-sockfile {self.base}/run/glusterd.socket
    option transport-type socket
    option transport.socket.listen-port {self.port}
    option transport.socket.bind-address 127.0.0.1
    option ping-timeout 0
    option event-threads 1
end-volume
""")
        pidfile = os.path.join(self.base, "run", "glusterd.pid")
        subprocess.run(["glusterd", "-f", vol, "-p", pidfile, "-l", f"{self.base}/log/glusterd.log"],
                       check=True, capture_output=True, timeout=60)
        _wait(lambda: _read(pidfile), 20, "glusterd wrote no pid file")
        self.pid = int(_read(pidfile))
        _wait(lambda: self.cli("pool", "list", check=False).returncode == 0, 30, "glusterd did not answer")
        self.create_volume(volume)

    def create_volume(self, name: str) -> str:
        """Create and start a one-brick volume ``name``; returns the share to mount (``127.0.0.1:/name``)."""
        brick = os.path.join(self.base, "brick", f"{name}-{uuid.uuid4().hex[:8]}")
        self.cli("volume", "create", name, f"{brick_host()}:{brick}", "force")
        self.cli("volume", "start", name)
        self.volumes[name] = brick
        return f"127.0.0.1:/{name}"

    def brick_pid(self, name: str = "vol") -> int | None:
        out = self.cli("volume", "status", name, "--xml", check=False).stdout
        pids = [int(p) for p in re.findall(r"<pid>(-?\d+)</pid>", out) if int(p) > 0]
        return pids[0] if pids else None

    def kill_brick(self, name: str = "vol") -> None:
        """Kill the brick process at once (SIGKILL), as a crashed server."""
        pid = self.brick_pid(name)
        if pid:
            os.kill(pid, signal.SIGKILL)
            _wait(lambda: not _alive(pid), 10, "the brick did not die")

    def start_brick(self, name: str = "vol") -> None:
        self.cli("volume", "start", name, "force")
        _wait(lambda: self.brick_pid(name) is not None, 20, "the brick did not come back")

    def down(self, *, remove: bool = True) -> None:
        bricks = []
        if self.pid and _alive(self.pid):
            for name in list(self.volumes):
                bricks.append(self.brick_pid(name))
                self.cli("volume", "stop", name, check=False)
        for pid in bricks:
            _stop(pid)
        _stop(self.pid)
        self.pid = None
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)


class Ganesha:
    """nfs-ganesha (VFS FSAL, NFSv3) on 127.0.0.1, exporting ``base/export`` read-write and ``base/ro`` read-only.

    rpcbind runs in a private network namespace of its own; ganesha registers with it over /run/rpcbind.sock.
    """

    NFS_PORT = 2049
    MOUNT_PORT = 20048

    def __init__(self, base: str) -> None:
        self.base = os.path.abspath(base)
        self.export = os.path.join(self.base, "export")
        self.ro_export = os.path.join(self.base, "ro")
        self.netns = f"ashvault-rpc-{os.getpid()}"
        self.rpcbind: subprocess.Popen[bytes] | None = None
        self.ganesha: subprocess.Popen[bytes] | None = None

    @property
    def mount_options(self) -> str:
        return f"port={self.NFS_PORT},mountport={self.MOUNT_PORT},timeo=30"

    @property
    def share(self) -> str:
        return f"127.0.0.1:{self.export}"

    @property
    def ro_share(self) -> str:
        return f"127.0.0.1:{self.ro_export}"

    @staticmethod
    def mount_command() -> str:
        """The ``mount_command`` that mounts a share of this server: the userspace client, run by this Python."""
        return f"{sys.executable} {NFS_FUSE}"

    def up(self) -> None:
        for tool in ("ganesha.nfsd", "rpcbind", "ip"):
            if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
                raise RuntimeError(f"{tool} is not installed (plugins/posix_nfs_gluster/ci/install.sh)")
        if _listening(self.NFS_PORT):
            raise RuntimeError(f"port {self.NFS_PORT} is taken: another NFS server runs")
        for d in ("export", "ro", "recov", "log", "run"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        self._rpcbind_up()
        self.start_ganesha()

    def _rpcbind_up(self) -> None:
        subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True, capture_output=True)
        if os.path.exists("/run/rpcbind.sock") and not self._rpcbind_answers():
            os.unlink("/run/rpcbind.sock")
        if os.path.exists("/run/rpcbind.sock"):
            return  # an rpcbind of the machine's own is running: ganesha registers with it
        self.rpcbind = subprocess.Popen(["ip", "netns", "exec", self.netns, "rpcbind", "-f"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: os.path.exists("/run/rpcbind.sock"), 10, "rpcbind made no /run/rpcbind.sock")

    @staticmethod
    def _rpcbind_answers() -> bool:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(0.5)
            return s.connect_ex("/run/rpcbind.sock") == 0

    def _config(self) -> str:
        exports = "".join(
            f"EXPORT {{ Export_Id = {i}; Path = {path}; Pseudo = /{name}; Access_Type = {access};"
            f" Squash = No_Root_Squash; SecType = sys; Protocols = 3, 4; Transports = TCP; FSAL {{ Name = VFS; }} }}\n"
            for i, (path, name, access) in enumerate(((self.export, "export", "RW"), (self.ro_export, "ro", "RO")), 1)
        )
        return (
            f"NFS_CORE_PARAM {{ Bind_addr = 127.0.0.1; NFS_Port = {self.NFS_PORT}; MNT_Port = {self.MOUNT_PORT};"
            " Protocols = 3, 4; Enable_NLM = false; Enable_RQUOTA = false; Enable_UDP = false; }\n"
            f"NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = {self.base}/recov; }}\n"
            "NFS_KRB5 { Active_krb5 = false; }\n"
            f"{exports}LOG {{ Default_Log_Level = EVENT; }}\n"
        )

    def start_ganesha(self) -> None:
        conf = os.path.join(self.base, "ganesha.conf")
        with open(conf, "w") as f:
            f.write(self._config())
        self.ganesha = subprocess.Popen(
            ["ganesha.nfsd", "-F", "-f", conf, "-L", f"{self.base}/log/ganesha.log",
             "-p", f"{self.base}/run/ganesha.pid", "-N", "NIV_EVENT"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(lambda: _listening(self.NFS_PORT) and _listening(self.MOUNT_PORT), 20,
                  "ganesha did not listen on 2049 and 20048")
        except RuntimeError:
            if self.ganesha.poll() is not None:
                raise RuntimeError(f"ganesha exited with {self.ganesha.returncode} "
                                   f"(see {self.base}/log/ganesha.log)") from None
            raise

    def kill_ganesha(self) -> None:
        """Kill the NFS server at once (SIGKILL), as a crashed server."""
        if self.ganesha is not None:
            self.ganesha.kill()
            self.ganesha.wait(10)
            self.ganesha = None
            _wait(lambda: not _listening(self.NFS_PORT), 10, "port 2049 stayed open")

    def down(self, *, remove: bool = True) -> None:
        if self.ganesha is not None:
            _stop(self.ganesha.pid)
            self.ganesha = None
        if self.rpcbind is not None:
            _stop(self.rpcbind.pid)
            self.rpcbind = None
            try:
                os.unlink("/run/rpcbind.sock")
            except FileNotFoundError:
                pass
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, check=False)
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)
