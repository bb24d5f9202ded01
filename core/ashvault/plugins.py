"""Finding and loading plugins through stevedore entry points.

A plugin whose import fails never breaks the tool: it is listed as unavailable with the reason, and asking for it
says what to install.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from typing import TYPE_CHECKING, Any

from oslo_config import cfg
from stevedore import ExtensionManager

from ashvault import conf as conf_mod
from ashvault import exceptions

if TYPE_CHECKING:
    from ashvault.driver import BackupDriver
    from ashvault.sources import VolumeSource

DRIVERS = "ashvault.drivers"
SOURCES = "ashvault.sources"
COMPRESSORS = "ashvault.compressors"

DISTRIBUTIONS = {
    DRIVERS: {
        "posix": "ashvault-posix",
        "nfs": "ashvault-posix",
        "glusterfs": "ashvault-posix",
        "swift": "ashvault-swift",
        "google": "ashvault-google",
        "ceph": "ashvault-ceph",
        "tsm": "ashvault-tsm",
    },
    SOURCES: {"rbd": "ashvault-ceph"},
    COMPRESSORS: {"zstd": "zstandard"},
}
"""Which distribution provides each plugin, for the 'pip install' hint: only plugins that a distribution in this
repository (or, for ``zstd``, on PyPI) provides today. A name enters when its driver does, never before."""

FOLDERS = {"ashvault-posix": "plugins/posix_nfs_gluster", "ashvault-swift": "plugins/swift",
           "ashvault-google": "plugins/google", "ashvault-ceph": "plugins/ceph", "ashvault-tsm": "plugins/tsm"}
"""Where each of this repository's distributions lives in it: they are not on a package index yet, so the hint
names the folder to install from."""

CINDER_MODULES = {"gcs": "google", "google": "google", "posix": "posix", "nfs": "nfs", "glusterfs": "glusterfs",
                  "swift": "swift", "ceph": "ceph", "tsm": "tsm", "s3": "s3"}
"""Cinder's driver module names (``cinder.backup.drivers.<module>``) and the ashvault driver each maps to."""

DRIVER_ALIASES = {"gcs": "google"}
"""Other names ``backup_driver`` accepts for a driver (Cinder's short module names)."""


def driver_name(value: str) -> str:
    """Turn ``backup_driver`` into an entry-point name.

    Accepts ``posix``, ``cinder.backup.drivers.posix`` and ``cinder.backup.drivers.posix.PosixBackupDriver``.
    """
    value = value.strip()
    if "." not in value:
        return DRIVER_ALIASES.get(value, value)
    parts = value.split(".")
    if "drivers" in parts:
        idx = parts.index("drivers")
        if idx + 1 < len(parts):
            module = parts[idx + 1]
            if module in CINDER_MODULES:
                return CINDER_MODULES[module]
    raise exceptions.ConfigurationError(
        reason=f"backup_driver '{value}' is neither a driver name nor a Cinder driver path "
        "(cinder.backup.drivers.<name>)"
    )


@dataclasses.dataclass
class PluginInfo:
    namespace: str
    name: str
    target: str
    distribution: str | None
    version: str | None
    plugin: Any = None
    error: str | None = None

    @property
    def available(self) -> bool:
        return self.error is None


def _dist(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def discover(namespace: str) -> list[PluginInfo]:
    """Every plugin registered in ``namespace``, loaded or with the reason it failed, sorted by name."""
    failures: dict[str, str] = {}

    def on_failure(_mgr: ExtensionManager, ep: importlib.metadata.EntryPoint, err: BaseException) -> None:
        failures[ep.name] = _reason(err)

    mgr = ExtensionManager(namespace, invoke_on_load=False, on_load_failure_callback=on_failure)
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group=namespace)}
    infos = {}
    for ext in mgr.extensions:
        dist, version = _dist(eps.get(ext.name, ext.entry_point))
        infos[ext.name] = PluginInfo(namespace, ext.name, ext.entry_point.value, dist, version, ext.plugin)
    for name, ep in eps.items():
        if name in failures and name not in infos:
            dist, version = _dist(ep)
            infos[name] = PluginInfo(namespace, name, ep.value, dist, version, None, failures[name])
    return [infos[k] for k in sorted(infos)]


def _reason(err: BaseException) -> str:
    if isinstance(err, ModuleNotFoundError) and err.name:
        return f"Python module '{err.name}' is missing"
    return f"{type(err).__name__}: {err}"


def install_hint(namespace: str, name: str) -> str:
    dist = DISTRIBUTIONS.get(namespace, {}).get(name)
    if dist is None:
        return "install the plugin that provides it"
    folder = FOLDERS.get(dist)
    if folder is None:
        return f"pip install {dist}"
    return f"install {dist}: pip install ./{folder} from a clone of the ashvault repository"


def load_class(namespace: str, name: str, *, kind: str) -> Any:
    """The class registered as ``name``. Raises ``PluginNotFound`` / ``PluginUnavailable`` with what to do."""
    eps = [ep for ep in importlib.metadata.entry_points(group=namespace) if ep.name == name]
    if not eps:
        known = ", ".join(sorted({ep.name for ep in importlib.metadata.entry_points(group=namespace)})) or "none"
        raise exceptions.PluginNotFound(
            f"{kind} '{name}' is not installed ({install_hint(namespace, name)}); installed: {known}",
            kind=kind, name=name,
        )
    try:
        return eps[0].load()
    except Exception as exc:
        raise exceptions.PluginUnavailable(
            f"{kind} '{name}' is installed but cannot be loaded: {_reason(exc)}", kind=kind, name=name
        ) from exc


def driver_class(name: str) -> type[BackupDriver]:
    """The driver class registered as ``name`` (a name or a Cinder class path), checked to be a driver."""
    from ashvault.driver import BackupDriver

    name = driver_name(name)
    cls = load_class(DRIVERS, name, kind="backup driver")
    if not (isinstance(cls, type) and issubclass(cls, BackupDriver)):
        raise exceptions.PluginUnavailable(kind="backup driver", name=name, reason="it is not a BackupDriver")
    return cls


def register_driver_options(conf: cfg.ConfigOpts, cls: type[BackupDriver]) -> None:
    conf_mod.register_group(conf, cls.option_group, cls.get_driver_options())


def load_driver(conf: cfg.ConfigOpts, name: str) -> BackupDriver:
    """A driver instance, its options registered in ``conf``."""
    cls = driver_class(name)
    register_driver_options(conf, cls)
    return cls(conf)


def load_source(conf: cfg.ConfigOpts, scheme: str) -> VolumeSource:
    """A volume source instance, its options registered in ``conf``."""
    cls = load_class(SOURCES, scheme, kind="volume source")
    for group, opts in cls.get_options():
        conf_mod.register_group(conf, group, opts)
    source: VolumeSource = cls(conf)
    return source
