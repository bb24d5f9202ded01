"""Cross-cutting behaviour put around any object store: retries, bandwidth limits and encryption at rest."""

import os
from typing import Any

from oslo_config import cfg

from ashvault.objectstore import ObjectStore
from ashvault.wrappers.retry import RetryingObjectStore
from ashvault.wrappers.throttle import ThrottledObjectStore

__all__ = ["RetryingObjectStore", "ThrottledObjectStore", "wrap"]


def wrap(store: ObjectStore, conf: cfg.ConfigOpts, options: Any) -> ObjectStore:
    """``store`` with the configured bandwidth limit, retries and encryption; ``options`` is the driver's option
    group. Encryption is outermost, so a retried call re-sends the same sealed bytes."""
    if os.environ.get("ASHVAULT_TEST_KILL_AT"):  # the kill -9 suite's hook, see ashvault.testing.crash
        from ashvault.testing import crash

        store = crash.from_environment(store)
    if conf.backup_bandwidth_limit:
        store = ThrottledObjectStore(store, conf.backup_bandwidth_limit)
    attempts = options.retry_attempts or conf.backup_object_retry_attempts
    backoff = options.retry_backoff if options.retry_backoff is not None else conf.backup_object_retry_backoff
    store = RetryingObjectStore(store, attempts=attempts, backoff=backoff)
    from ashvault.wrappers import encryption  # cryptography loads only once a store is made

    return encryption.for_config(store, conf)
