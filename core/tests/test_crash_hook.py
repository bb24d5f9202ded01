"""The kill -9 hook of ashvault.testing.crash: absent unless asked for, and it kills at the call it names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from ashvault import exceptions
from ashvault.conf import make_config, register_group
from ashvault.testing import crash
from ashvault.testing.fakes import MemoryBackupDriver
from ashvault.wrappers import wrap


def _driver() -> MemoryBackupDriver:
    conf = make_config([], config_files=[])
    register_group(conf, MemoryBackupDriver.option_group, MemoryBackupDriver.get_driver_options())
    return MemoryBackupDriver(conf)


def test_nothing_is_wrapped_when_the_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crash.ENV, raising=False)
    driver = _driver()
    store = wrap(driver.make_object_store(), driver.conf, driver.options)
    while store is not None:
        assert not isinstance(store, crash.KillingObjectStore)
        store = getattr(store, "inner", None)


@pytest.mark.parametrize("spec", ["", "put", "put:0", "put:-1", "write:3", "put:2:before", "put:x", "get:1:after:1"])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(exceptions.InvalidInput):
        crash.parse(spec)


@pytest.mark.parametrize(("spec", "stored"), [("put:3", 2), ("put:3:after", 3), ("get:2", 5), ("delete:1", 5)])
def test_the_process_dies_at_the_named_call(spec: str, stored: int) -> None:
    script = (
        "from ashvault.testing import crash\n"
        "from ashvault.testing.fakes import MemoryObjectStore\n"
        "class Loud(MemoryObjectStore):\n"
        "    def put_object(self, container, name, data):\n"
        "        super().put_object(container, name, data)\n"
        "        print('stored', name, flush=True)\n"
        "store = crash.from_environment(Loud())\n"
        "store.put_container('c')\n"
        "for n in range(5):\n"
        "    store.put_object('c', f'o{n}', b'x')\n"
        "store.get_object('c', 'o0')\n"
        "store.get_object('c', 'o1')\n"
        "for n in range(5):\n"
        "    store.delete_object('c', f'o{n}')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, crash.ENV: spec})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.count("stored ") == stored


def test_a_store_call_past_the_named_one_never_comes() -> None:
    """The count is per process: a spec beyond the calls made leaves the process alive."""
    proc = subprocess.run([sys.executable, "-c", "from ashvault.testing import crash\n"
                           "from ashvault.testing.fakes import MemoryObjectStore\n"
                           "s = crash.from_environment(MemoryObjectStore()); s.put_container('c')\n"
                           "s.put_object('c', 'o', b'x'); print('alive')\n"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, crash.ENV: "put:2"})
    assert proc.returncode == 0 and proc.stdout == "alive\n", proc.stderr
