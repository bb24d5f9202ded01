"""Cross-cutting behaviour put around any object store: retries and bandwidth limits."""

from ashvault.wrappers.retry import RetryingObjectStore
from ashvault.wrappers.throttle import ThrottledObjectStore

__all__ = ["RetryingObjectStore", "ThrottledObjectStore"]
