"""The google driver: the chunked engine over Google Cloud Storage buckets."""

from __future__ import annotations

from typing import Any

import google.auth
from google.api_core.client_info import ClientInfo
from google.auth import credentials as ga_credentials
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import AuthorizedSession
from google.cloud import storage
from google.oauth2 import service_account
from oslo_config import cfg
from requests.adapters import HTTPAdapter

from ashvault import exceptions
from ashvault.chunked import ChunkedBackupDriver, pipeline_threads
from ashvault.objectstore import ObjectStore
from ashvault_google import opts
from ashvault_google.objectstore import GoogleObjectStore, parse_codes

SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]
_QUARTER_MIB = 256 * 1024


def credentials_from_options(o: Any) -> tuple[ga_credentials.Credentials, str | None]:
    """The credentials and the project they name: anonymous, a service-account file, or ADC.

    Errors name the file, never its content (it holds a private key).
    """
    if o.anonymous:
        return ga_credentials.AnonymousCredentials(), None
    if o.credential_file:
        try:
            creds = service_account.Credentials.from_service_account_file(o.credential_file, scopes=SCOPES)
        except OSError as exc:
            raise exceptions.DriverSetupError(
                reason=f"cannot read credential_file {o.credential_file}: {exc.strerror}") from None
        except (ValueError, KeyError) as exc:
            missing = f" ({exc})" if isinstance(exc, KeyError) else ""
            raise exceptions.DriverSetupError(
                reason=f"credential_file {o.credential_file} is not a service-account JSON key{missing}") from None
        return creds, creds.project_id
    try:
        creds, project = google.auth.default(scopes=SCOPES)
    except auth_exceptions.DefaultCredentialsError:
        raise exceptions.DriverSetupError(
            reason="no Google credentials: set credential_file (a service-account JSON key), provide Application "
                   "Default Credentials, or set anonymous = true for an emulator") from None
    return creds, project


def make_client(o: Any, pool_size: int) -> storage.Client:
    """A client with its own HTTP session (proxy, connection pool, user agent) as the options say."""
    creds, project = credentials_from_options(o)
    session = AuthorizedSession(creds)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if o.proxy_url:
        session.proxies = {"http": o.proxy_url, "https": o.proxy_url}
    client_options = {"api_endpoint": o.endpoint.rstrip("/")} if o.endpoint else None
    return storage.Client(project=o.project_id or project, credentials=creds, _http=session,
                          client_info=ClientInfo(user_agent=o.user_agent), client_options=client_options)


class GoogleBackupDriver(ChunkedBackupDriver):
    """Backs up to a Google Cloud Storage bucket (``[backup_google]``); see :class:`GoogleObjectStore`."""

    name = "google"
    option_group = opts.GROUP

    @classmethod
    def get_driver_options(cls) -> list[cfg.Opt]:
        return opts.google_opts

    @property
    def default_container(self) -> str:
        if not self.options.container:
            raise exceptions.DriverSetupError(
                reason=f"[{self.option_group}] container (Cinder's backup_gcs_bucket) is not set: bucket names "
                       "are global to all of Google Cloud, so there is no default")
        return str(self.options.container)

    def make_object_store(self) -> ObjectStore:
        o = self.options
        chunk = o.writer_chunk_size
        if chunk != -1 and (chunk <= 0 or chunk % _QUARTER_MIB):
            raise exceptions.DriverSetupError(
                reason=f"[{self.option_group}] writer_chunk_size ({chunk}) must be -1 or a multiple of 262144")
        codes = parse_codes(o.retry_error_codes or [])
        return GoogleObjectStore(
            make_client(o, pool_size=max(8, o.max_transfers + pipeline_threads(self.conf))),
            create_containers=self.conf.backup_create_containers,
            location=o.bucket_location,
            storage_class=o.storage_class,
            check_container=self.default_container,
            num_retries=o.num_retries,
            retry_codes=codes,
            chunk_size=None if chunk == -1 else chunk,
            checksum=o.checksum,
            timeout=o.timeout,
        )
