"""Cross-cutting behaviour put around any object store: retries and bandwidth limits."""

from typing import Any

from oslo_config import cfg

from ashvault.objectstore import ObjectStore
from ashvault.wrappers.retry import RetryingObjectStore
from ashvault.wrappers.throttle import ThrottledObjectStore

__all__ = ["RetryingObjectStore", "ThrottledObjectStore", "wrap"]


def wrap(store: ObjectStore, conf: cfg.ConfigOpts, options: Any) -> ObjectStore:
    """``store`` with the configured bandwidth limit and retries; ``options`` is the driver's option group."""
    if conf.backup_bandwidth_limit:
        store = ThrottledObjectStore(store, conf.backup_bandwidth_limit)
    attempts = options.retry_attempts or conf.backup_object_retry_attempts
    backoff = options.retry_backoff if options.retry_backoff is not None else conf.backup_object_retry_backoff
    return RetryingObjectStore(store, attempts=attempts, backoff=backoff)
