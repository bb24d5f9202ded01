"""A throw-away OpenStack Swift all-in-one on 127.0.0.1: proxy, object, container and account servers, one replica,
tempauth, all state in one directory.

    python plugins/swift/ci/swift_aio.py up DIR [--venv /opt/ashvault-swift-venv] [--port P]
    python plugins/swift/ci/swift_aio.py down DIR

``up`` prints the ``SWIFT_*`` lines it also writes to ``DIR/swift.env`` (auth URL, users, keys, storage URL) and
leaves the servers running; ``down`` stops the servers it recorded and removes DIR. Tests import :class:`SwiftAIO`
instead, so that they can kill and restart one server. Stdlib only: Swift runs from its own virtualenv (installed by
``ci/install.sh``), never in the project's. The recipe and its pitfalls: shared/reference/services.md, section D.1.
"""

from __future__ import annotations

import argparse
import base64
import glob
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

DEFAULT_VENV = os.environ.get("ASHVAULT_SWIFT_VENV", "/opt/ashvault-swift-venv")
SERVERS = ("object", "container", "account", "proxy")
PART_POWER = 6
USERS = {  # account:user -> (key, groups)
    "admin:admin": ("admin", ".admin .reseller_admin"),
    "test:tester": ("testing", ".admin"),
    "test2:tester2": ("testing2", ".admin"),
    "test:tester3": ("testing3", ""),
}

_COMMON = """[DEFAULT]
devices = {root}/node
mount_check = false
disable_fallocate = true
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
user = {user}
swift_dir = {root}/etc
log_address = {root}/no-syslog
log_level = {log_level}
"""

_BACKEND = {
    "object": "[pipeline:main]\npipeline = object-server\n\n[app:object-server]\nuse = egg:swift#object\n",
    "container": "[pipeline:main]\npipeline = container-server\n\n[app:container-server]\nuse = egg:swift#container\n",
    "account": "[pipeline:main]\npipeline = account-server\n\n[app:account-server]\nuse = egg:swift#account\n",
}

_PROXY = """[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging listing_formats bulk tempurl tempauth copy \
container-quotas account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:tempauth]
use = egg:swift#tempauth
fernet_key_k1 = {fernet}
active_fernet_key_id = k1
{users}

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:tempurl]
use = egg:swift#tempurl
[filter:copy]
use = egg:swift#copy
[filter:container-quotas]
use = egg:swift#container_quotas
[filter:account-quotas]
use = egg:swift#account_quotas
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
[filter:symlink]
use = egg:swift#symlink
"""

_RINGS = """
import sys
from swift.common.ring import RingBuilder
etc = sys.argv[1]
for kind, port in zip(("object", "container", "account"), sys.argv[2:5]):
    b = RingBuilder({part_power}, 1, 1)
    b.add_dev({{"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port), "device": "d1",
               "weight": 1.0}})
    b.rebalance()
    b.save(f"{{etc}}/{{kind}}.builder")
    b.get_ring().save(f"{{etc}}/{{kind}}.ring.gz")
"""


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as dead (``kill -0`` succeeds on zombies)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class SwiftAIO:
    """One all-in-one Swift under ``root``. Raises ``RuntimeError`` with the log's tail when it cannot start."""

    def __init__(self, root: str, *, venv: str = DEFAULT_VENV, port: int | None = None,
                 log_level: str = "WARNING") -> None:
        self.root = os.path.abspath(root)
        self.venv = venv
        self.log_level = log_level
        self.state_file = os.path.join(self.root, "aio.json")
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        if os.path.exists(self.state_file):
            with open(self.state_file) as f:
                self.state = json.load(f)
        else:
            ports = [port, port + 1, port + 2, port + 3] if port else free_ports(4)
            self.state = {"ports": dict(zip(("proxy", "object", "container", "account"), ports, strict=True)),
                          "suffix": os.urandom(8).hex(), "pids": {}}

    @property
    def port(self) -> int:
        return int(self.state["ports"]["proxy"])

    @property
    def auth_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth/v1.0"

    def storage_url(self, account: str = "test") -> str:
        return f"http://127.0.0.1:{self.port}/v1/AUTH_{account}"

    @property
    def devices(self) -> str:
        return os.path.join(self.root, "node")

    def env(self) -> dict[str, str]:
        return {
            "SWIFT_AUTH_URL": self.auth_url, "SWIFT_USER": "test:tester", "SWIFT_KEY": USERS["test:tester"][0],
            "SWIFT_STORAGE_URL": self.storage_url(), "SWIFT_ADMIN_USER": "admin:admin",
            "SWIFT_ADMIN_KEY": USERS["admin:admin"][0], "SWIFT_USER2": "test2:tester2",
            "SWIFT_KEY2": USERS["test2:tester2"][0], "SWIFT_USER3": "test:tester3",
            "SWIFT_KEY3": USERS["test:tester3"][0],
        }

    def _write_configs(self) -> None:
        etc = os.path.join(self.root, "etc")
        for d in (etc, os.path.join(self.devices, "d1"), os.path.join(self.root, "log")):
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(etc, "swift.conf"), "w") as f:
            f.write(f"[swift-hash]\nswift_hash_path_suffix = {self.state['suffix']}\nswift_hash_path_prefix =\n\n"
                    "[storage-policy:0]\nname = Policy-0\ndefault = yes\n")
        user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
        fernet = base64.urlsafe_b64encode(os.urandom(32)).decode()
        users = "\n".join(f"user_{u.replace(':', '_')} = {key} {groups}".rstrip()
                          for u, (key, groups) in USERS.items())
        for server in SERVERS:
            text = _COMMON.format(root=self.root, port=self.state["ports"][server], user=user,
                                  log_level=self.log_level)
            text += "\n" + (_PROXY.format(fernet=fernet, users=users) if server == "proxy" else _BACKEND[server])
            with open(os.path.join(etc, f"{server}-server.conf"), "w") as f:
                f.write(text)
        ports = [str(self.state["ports"][k]) for k in ("object", "container", "account")]
        proc = subprocess.run([self._bin("python"), "-c", _RINGS.format(part_power=PART_POWER), etc, *ports],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"building the Swift rings failed: {proc.stderr.strip()[-2000:]}")

    def _bin(self, name: str) -> str:
        path = os.path.join(self.venv, "bin", name)
        if not os.path.exists(path):
            raise RuntimeError(f"{path} is missing: run plugins/swift/ci/install.sh (Swift's own virtualenv)")
        return path

    def _save(self) -> None:
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f)
        os.replace(tmp, self.state_file)

    def start(self, server: str) -> None:
        """Start one server in its own process group (no fork: ``workers = 0``)."""
        conf = os.path.join(self.root, "etc", f"{server}-server.conf")
        log = open(os.path.join(self.root, "log", f"{server}.log"), "ab")  # noqa: SIM115 - the child keeps it
        try:
            proc = subprocess.Popen([self._bin(f"swift-{server}-server"), conf], stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.root)
        finally:
            log.close()
        self._procs[server] = proc
        self.state["pids"][server] = proc.pid
        self._save()

    def stop(self, server: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop one server; SIGKILL after ``timeout`` seconds. No error when it is not running."""
        pid = self.state["pids"].pop(server, None)
        self._save()
        if pid is None:
            return
        proc = self._procs.pop(server, None)
        for s in (sig, signal.SIGKILL):
            if _alive(pid):
                try:
                    os.killpg(pid, s)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc is not None and proc.poll() is not None:
                    return
                if proc is None and not _alive(pid):
                    return
                time.sleep(0.05)

    def wait_listening(self, server: str, timeout: float = 30.0) -> None:
        port = self.state["ports"][server]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                self._check_running(server)
                time.sleep(0.05)
        raise RuntimeError(f"swift {server} server did not listen on 127.0.0.1:{port} in {timeout:.0f}s"
                           f"{self._log_tail(server)}")

    def _check_running(self, server: str) -> None:
        pid = self.state["pids"].get(server)
        if pid is None or not _alive(pid):
            proc = self._procs.get(server)
            if proc is not None:
                proc.poll()
            raise RuntimeError(f"swift {server} server exited{self._log_tail(server)}")

    def _log_tail(self, server: str) -> str:
        try:
            with open(os.path.join(self.root, "log", f"{server}.log"), errors="replace") as f:
                lines = f.read().strip().splitlines()[-15:]
        except OSError:
            return ""
        return ":\n" + "\n".join(lines) if lines else ""

    def token(self, user: str = "test:tester", key: str | None = None) -> tuple[str, str]:
        """(storage URL, token) from tempauth."""
        req = urllib.request.Request(self.auth_url, headers={"X-Auth-User": user,
                                                             "X-Auth-Key": key or USERS[user][0]})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.headers["X-Storage-Url"], resp.headers["X-Auth-Token"]

    def ready(self) -> bool:
        """Authenticate, then make and remove a container: the whole path works."""
        try:
            url, token = self.token()
            name = f"{url}/aio-ready-{os.getpid()}"
            for method in ("PUT", "DELETE"):
                req = urllib.request.Request(name, method=method, headers={"X-Auth-Token": token})
                with urllib.request.urlopen(req, timeout=10):
                    pass
            return True
        except (OSError, urllib.error.URLError, KeyError):
            return False

    def up(self, timeout: float = 60.0) -> dict[str, str]:
        """Write the configuration, start the four servers and wait until a container PUT works."""
        os.makedirs(self.root, exist_ok=True)
        self._write_configs()
        for server in SERVERS:
            self.start(server)
        self.wait_ready(timeout)
        env = self.env()
        with open(os.path.join(self.root, "swift.env"), "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in env.items())
        return env

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for server in SERVERS:
            self.wait_listening(server, max(1.0, deadline - time.monotonic()))
        while not self.ready():
            for server in SERVERS:
                self._check_running(server)
            if time.monotonic() > deadline:
                raise RuntimeError(f"swift did not accept a container PUT in {timeout:.0f}s{self._log_tail('proxy')}")
            time.sleep(0.2)

    def restart(self, server: str, sig: int = signal.SIGKILL) -> None:
        self.stop(server, sig)
        self.start(server)
        self.wait_listening(server)

    def down(self, *, remove: bool = True) -> None:
        for server in reversed(SERVERS):
            self.stop(server)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def object_files(self, account: str, container: str, name: str) -> list[str]:
        """The ``.data`` files holding an object on disk (one replica: at most one)."""
        digest = hashlib.md5(f"/{account}/{container}/{name}".encode() + self.state["suffix"].encode(),
                             usedforsecurity=False)
        part = struct.unpack_from(">I", digest.digest())[0] >> (32 - PART_POWER)
        h = digest.hexdigest()
        return sorted(glob.glob(os.path.join(self.devices, "d1", "objects", str(part), h[-3:], h, "*.data")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("dir")
    parser.add_argument("--venv", default=DEFAULT_VENV)
    parser.add_argument("--port", type=int, help="proxy port; the others follow it (default: free ports)")
    args = parser.parse_args(argv)
    aio = SwiftAIO(args.dir, venv=args.venv, port=args.port)
    if args.action == "down":
        aio.down()
        return 0
    try:
        env = aio.up()
    except RuntimeError as exc:
        aio.down(remove=False)
        print(f"swift_aio: {exc}", file=sys.stderr)
        return 1
    for k, v in env.items():
        print(f"{k}={v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
