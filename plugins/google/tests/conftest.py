"""GCS emulators on 127.0.0.1 for the session, started and stopped here (services.md D.2).

``gse``: gcp-storage-emulator, keeping its objects on disk so that a test can stop it mid-backup and start it again.
``fake_gcs``: fake-gcs-server, for the generation preconditions gcp-storage-emulator ignores. When one cannot start
the tests that need it are skipped, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from oslo_config import cfg

from ashvault.conf import make_config, register_group
from ashvault_google.google import GoogleBackupDriver
from ashvault_google.objectstore import GoogleObjectStore

HERE = pathlib.Path(__file__).resolve().parent
PROJECT = "ashvault-test"


def _load(name: str, path: pathlib.Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


emulators = _load("ashvault_google_ci_emulators", HERE.parent / "ci" / "emulators.py")
faults = _load("ashvault_google_tests_faults", HERE / "faults.py")


def _start(server: Any) -> None:
    try:
        server.start()
    except RuntimeError as exc:
        server.stop()
        if os.environ.get("CI") == "true":
            pytest.fail(f"{server.name} did not start: {exc}")
        pytest.skip(f"{server.name} did not start (pip install -r requirements-test.txt): {exc}")


@pytest.fixture(scope="session")
def gse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """gcp-storage-emulator on disk: ``url``, ``stop()``, ``start()``, ``data_dir``."""
    server = emulators.StorageEmulator(str(tmp_path_factory.mktemp("gse")))
    _start(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[Any]:
    server = emulators.FakeGcsServer()
    _start(server)
    yield server
    server.stop()


@pytest.fixture
def proxy(gse: Any) -> Iterator[Any]:
    """A :class:`faults.FaultProxy` in front of ``gse``."""
    p = faults.FaultProxy(gse.url)
    yield p
    p.close()


def client_for(url: str) -> storage.Client:
    return storage.Client(project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": url})


def bucket_name(kind: str = "b") -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def bucket() -> str:
    """A fresh bucket name."""
    return bucket_name()


@pytest.fixture
def new_store(gse: Any) -> Callable[..., GoogleObjectStore]:
    """Makes an anonymous store on ``url`` (the emulator unless told), retrying quickly."""

    def make(url: str | None = None, **kwargs: Any) -> GoogleObjectStore:
        kwargs.setdefault("initial_delay", 0.05)
        return GoogleObjectStore(client_for(url or gse.url), **kwargs)

    return make


@pytest.fixture
def driver_conf(gse: Any, tmp_path: pathlib.Path) -> Callable[..., cfg.ConfigOpts]:
    """Makes a configuration for the google driver on the emulator: 1 MiB objects, a fresh bucket."""

    def make(**overrides: Any) -> cfg.ConfigOpts:
        conf = make_config([], config_files=[])
        conf.set_override("ashvault_state_path", str(tmp_path / "state"))
        register_group(conf, GoogleBackupDriver.option_group, GoogleBackupDriver.get_driver_options())
        values = {"anonymous": True, "endpoint": gse.url, "project_id": PROJECT, "object_size": 1 << 20,
                  "retry_backoff": 0.2, "container": bucket_name("c"), **overrides}
        for name, value in values.items():
            conf.set_override(name, value, group=GoogleBackupDriver.option_group)
        return conf

    return make
