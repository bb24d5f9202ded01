"""A real Swift all-in-one (four servers, tempauth, one replica) on 127.0.0.1 for the session.

Swift runs from its own virtualenv (``ci/install.sh``). When it cannot start the tests are skipped, except under
``CI=true``, where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from oslo_config import cfg

from ashvault.conf import make_config, register_group
from ashvault_swift.auth import SwiftV1
from ashvault_swift.objectstore import SwiftObjectStore
from ashvault_swift.swift import SwiftBackupDriver

HERE = pathlib.Path(__file__).resolve().parent


def _load_aio() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ashvault_swift_ci_aio", HERE.parent / "ci" / "swift_aio.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


swift_aio = _load_aio()


@pytest.fixture(scope="session")
def swift(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The running all-in-one: ``auth_url``, ``storage_url()``, ``restart(server)``, ``object_files(...)``."""
    aio = swift_aio.SwiftAIO(str(tmp_path_factory.mktemp("swift-aio")))
    try:
        aio.up()
    except RuntimeError as exc:
        aio.down(remove=False)
        if os.environ.get("CI") == "true":
            pytest.fail(f"Swift all-in-one did not start: {exc}")
        pytest.skip(f"Swift all-in-one did not start (run plugins/swift/ci/install.sh): {exc}")
    yield aio
    aio.down()


@pytest.fixture
def new_store(swift: Any) -> Callable[..., SwiftObjectStore]:
    """Makes a store logged in through tempauth (``test:tester`` unless told)."""

    def make(user: str = "test:tester", key: str = "testing", **kwargs: Any) -> SwiftObjectStore:
        return SwiftObjectStore(SwiftV1(swift.auth_url, user, key, timeout=10), **kwargs)

    return make


@pytest.fixture
def driver_conf(swift: Any, tmp_path: pathlib.Path) -> Callable[..., cfg.ConfigOpts]:
    """Makes a configuration for the swift driver as ``test:tester``, 1 MiB objects, a fresh container."""

    def make(**overrides: Any) -> cfg.ConfigOpts:
        conf = make_config([], config_files=[])
        conf.set_override("ashvault_state_path", str(tmp_path / "state"))
        register_group(conf, SwiftBackupDriver.option_group, SwiftBackupDriver.get_driver_options())
        values = {"auth": "single_user", "auth_version": "1", "auth_url": swift.auth_url, "user": "test:tester",
                  "key": "testing", "object_size": 1 << 20, "retry_backoff": 0.5,
                  "container": f"c-{uuid.uuid4().hex[:12]}", **overrides}
        for name, value in values.items():
            conf.set_override(name, value, group=SwiftBackupDriver.option_group)
        return conf

    return make
