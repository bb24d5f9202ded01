"""Where the storage URL and token come from: a token the user has (per_user), Swift's v1 auth, or Keystone v2/v3.

Every credential source hands out ``(storage_url, token)`` and raises only ashvault errors: ``AuthenticationFailed``
when the credentials are refused, ``TransientDriverError`` when the endpoint cannot be reached or answers 5xx,
``DriverSetupError`` when the configuration cannot work (no key, no object-store endpoint in the catalog). No
message ever holds a key or a token.
"""

from __future__ import annotations

import abc
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

from ashvault import exceptions

_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()]+)")


def network_reason(exc: BaseException) -> str:
    """A short cause for a connection failure ('connection refused', 'timed out') out of requests' long text."""
    text = str(exc)
    found = _ERRNO.findall(text)
    if found:
        return found[-1].strip().lower()
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return "timed out"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed by the server"
    return type(exc).__name__


class Credentials(abc.ABC):
    """A thread-safe source of ``(storage_url, token)``; the first call authenticates."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._current: tuple[str, str] | None = None

    @abc.abstractmethod
    def _authenticate(self) -> tuple[str, str]:
        """Log in and return ``(storage_url, token)``."""

    def get(self) -> tuple[str, str]:
        with self._lock:
            if self._current is None:
                self._current = self._authenticate()
            return self._current

    def renew(self, stale_token: str) -> tuple[str, str]:
        """A new token, unless another thread already replaced ``stale_token``. Raises as :meth:`get`."""
        with self._lock:
            if self._current is None or self._current[1] == stale_token:
                self._current = None
                self._current = self._authenticate()
            return self._current


class PreAuthenticated(Credentials):
    """per_user: a storage URL and a token obtained elsewhere (Cinder passes the user's own); never renewed."""

    def __init__(self, storage_url: str, token: str) -> None:
        super().__init__(storage_url)
        self._current = (storage_url, token)

    def _authenticate(self) -> tuple[str, str]:
        raise exceptions.AuthenticationFailed(
            reason=f"the token for {self.endpoint} was refused (expired?); get a new one into $OS_AUTH_TOKEN"
        )


class SwiftV1(Credentials):
    """single_user with auth_version 1: Swift's own authentication (tempauth, swauth), user ``account:user``."""

    def __init__(self, auth_url: str, user: str, key: str, *,
                 ssl: Mapping[str, Any] | None = None, timeout: float = 60.0) -> None:
        super().__init__(auth_url)
        self.user = user
        self._key = key
        self._ssl = dict(ssl or {})
        self._timeout = timeout

    def _authenticate(self) -> tuple[str, str]:
        from requests import RequestException
        from swiftclient.client import get_auth
        from swiftclient.exceptions import ClientException

        try:
            url, token = get_auth(self.endpoint, self.user, self._key, auth_version="1", timeout=self._timeout,
                                  **self._ssl)
        except ClientException as exc:
            status = exc.http_status
            if status in (401, 403):
                raise exceptions.AuthenticationFailed(
                    reason=f"{self.endpoint} refused user '{self.user}' (HTTP {status}): check user and key"
                ) from None
            if status is None or status >= 500 or status in (408, 429):
                raise exceptions.TransientDriverError(
                    reason=f"authentication at {self.endpoint} failed (HTTP {status})") from None
            raise exceptions.DriverSetupError(
                reason=f"authentication at {self.endpoint} failed (HTTP {status}): is auth_url a v1 auth URL?"
            ) from None
        except (OSError, RequestException) as exc:
            raise exceptions.TransientDriverError(
                reason=f"cannot reach {self.endpoint}: {network_reason(exc)}") from None
        return url, token


class Keystone(Credentials):
    """single_user with auth_version 2 or 3: a keystoneauth1 password session; the catalog gives the endpoint."""

    def __init__(self, version: str, auth_url: str, user: str, key: str, *, tenant: str | None = None,
                 project: str | None = None, user_domain: str | None = None, project_domain: str | None = None,
                 region_name: str | None = None, catalog_info: str = "object-store:swift:publicURL",
                 verify: bool | str = True, timeout: float = 60.0) -> None:
        super().__init__(auth_url)
        from keystoneauth1 import session
        from keystoneauth1.identity import v2, v3

        self.user = user
        self._region = region_name
        parts = catalog_info.split(":")
        if len(parts) != 3:
            raise exceptions.DriverSetupError(
                reason=f"catalog_info '{catalog_info}' is not <service_type>:<service_name>:<endpoint_type>")
        self._service_type, self._service_name = parts[0], parts[1] or None
        self._interface = parts[2].removesuffix("URL")
        plugin: Any
        if version == "2":
            plugin = v2.Password(auth_url=auth_url, username=user, password=key, tenant_name=tenant or project)
        else:
            plugin = v3.Password(auth_url=auth_url, username=user, password=key,
                                 project_name=project or tenant,
                                 user_domain_name=user_domain or "Default",
                                 project_domain_name=project_domain or "Default")
        self._plugin = plugin
        self._session = session.Session(auth=plugin, verify=verify, timeout=timeout)

    def _authenticate(self) -> tuple[str, str]:
        from keystoneauth1 import exceptions as ksa

        try:
            token = self._session.get_token()
            url = self._session.get_endpoint(
                service_type=self._service_type, service_name=self._service_name, interface=self._interface,
                region_name=self._region)
        except (ksa.Unauthorized, ksa.Forbidden) as exc:
            raise exceptions.AuthenticationFailed(
                reason=f"Keystone at {self.endpoint} refused user '{self.user}' (HTTP {exc.http_status}): "
                       "check user, key, project and domains") from None
        except ksa.EndpointNotFound:
            raise exceptions.DriverSetupError(
                reason=f"Keystone's catalog has no {self._service_type} endpoint ({self._interface}"
                       f"{', region ' + self._region if self._region else ''})") from None
        except (ksa.ConnectFailure, ksa.ConnectionError, ksa.RequestTimeout, ksa.ServiceUnavailable,
                ksa.HttpServerError) as exc:
            raise exceptions.TransientDriverError(
                reason=f"cannot reach Keystone at {self.endpoint}: {network_reason(exc)}") from None
        except ksa.ClientException as exc:
            raise exceptions.DriverSetupError(
                reason=f"Keystone at {self.endpoint}: {type(exc).__name__}") from None
        if not url or not token:
            raise exceptions.DriverSetupError(reason=f"Keystone at {self.endpoint} gave no token or endpoint")
        return url, token

    def renew(self, stale_token: str) -> tuple[str, str]:
        with self._lock:
            if self._current is None or self._current[1] == stale_token:
                self._plugin.invalidate()
                self._current = None
                self._current = self._authenticate()
            return self._current


def from_options(opts: Any, environ: Mapping[str, str] = os.environ) -> Credentials:
    """Credentials for ``[backup_swift]``. Raises ``DriverSetupError`` naming what is missing."""
    verify: bool | str = False if opts.auth_insecure else (opts.ca_cert_file or True)
    if opts.auth == "per_user":
        token = environ.get("OS_AUTH_TOKEN")
        url = environ.get("OS_STORAGE_URL") or opts.url
        if url and url.endswith("_") and environ.get("OS_PROJECT_ID") and not environ.get("OS_STORAGE_URL"):
            url += environ["OS_PROJECT_ID"]
        if not token or not url:
            missing = " and ".join(n for n, v in (("$OS_AUTH_TOKEN", token), ("$OS_STORAGE_URL or url", url))
                                   if not v)
            raise exceptions.DriverSetupError(
                reason=f"[backup_swift] auth = per_user needs {missing} (or use auth = single_user)")
        return PreAuthenticated(url, token)
    missing = [n for n in ("auth_url", "user", "key") if not getattr(opts, n)]
    if missing:
        raise exceptions.DriverSetupError(
            reason=f"[backup_swift] auth = single_user needs {', '.join(missing)} (backup_swift_{missing[0]})")
    if opts.auth_version == "1":
        ssl: dict[str, Any] = {"insecure": True} if opts.auth_insecure else {"cacert": opts.ca_cert_file}
        return SwiftV1(opts.auth_url, opts.user, opts.key, ssl=ssl, timeout=opts.timeout)
    return Keystone(opts.auth_version, opts.auth_url, opts.user, opts.key, tenant=opts.tenant, project=opts.project,
                    user_domain=opts.user_domain, project_domain=opts.project_domain,
                    region_name=opts.region_name, catalog_info=opts.catalog_info,
                    verify=verify, timeout=opts.timeout)
