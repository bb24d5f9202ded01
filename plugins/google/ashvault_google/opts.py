"""Options of the google driver. Imports nothing but oslo.config, so the sample config never needs the backend.

Every option Cinder's gcs driver has is also read under its ``[DEFAULT] backup_gcs_*`` name, with Cinder's default.
"""

from __future__ import annotations

from oslo_config import cfg

from ashvault.conf import chunked_driver_opts

GROUP = "backup_google"
MiB = 1 << 20


def _cinder(name: str, **kwargs: object) -> dict[str, object]:
    return {"deprecated_opts": [cfg.DeprecatedOpt(name, group="DEFAULT")], **kwargs}


google_opts = [
    cfg.StrOpt("project_id", **_cinder("backup_gcs_project_id"),
               help="Project that owns the buckets ashvault creates (and is billed for them). Unset: the project "
                    "of the credentials, or $GOOGLE_CLOUD_PROJECT."),
    cfg.StrOpt("credential_file", **_cinder("backup_gcs_credential_file"),
               help="Service-account JSON key file. Unset: Application Default Credentials "
                    "($GOOGLE_APPLICATION_CREDENTIALS, gcloud's, or the metadata server), unless anonymous is set."),
    cfg.BoolOpt("anonymous", default=False,
                help="Send no credentials at all: for emulators (gcp-storage-emulator, fake-gcs-server) and "
                     "public buckets."),
    cfg.URIOpt("endpoint", schemes=["http", "https"],
               help="Base URL of the JSON API, e.g. http://127.0.0.1:9023 for an emulator or a Private Service "
                    "Connect endpoint. Unset: https://storage.googleapis.com ($STORAGE_EMULATOR_HOST, when set, "
                    "wins, as in Google's client)."),
    cfg.StrOpt("bucket_location", default="US", **_cinder("backup_gcs_bucket_location"),
               help="Location of the buckets ashvault creates."),
    cfg.StrOpt("storage_class", default="NEARLINE", **_cinder("backup_gcs_storage_class"),
               help="Default storage class of the buckets ashvault creates."),
    cfg.IntOpt("writer_chunk_size", default=2 * MiB, **_cinder("backup_gcs_writer_chunk_size"),
               help="Objects over 8 MiB are sent as resumable uploads in pieces of this many bytes (a multiple of "
                    "256 KiB; each piece is retried on its own); -1 sends the whole object in one piece. Objects "
                    "up to 8 MiB always go in one request."),
    cfg.IntOpt("reader_chunk_size", default=2 * MiB, **_cinder("backup_gcs_reader_chunk_size"),
               help="Accepted for cinder.conf compatibility and not used: every object is read in one request, "
                    "because a ranged read loses the server's whole-object checksum that each download is "
                    "verified against. Objects are at most object_size, so memory stays bounded."),
    cfg.IntOpt("num_retries", default=3, min=0, **_cinder("backup_gcs_num_retries"),
               help="Retries of one request by Google's client (exponential backoff with jitter, starting at 1 s) "
                    "on 408, 429, 5xx, the codes in retry_error_codes and connection errors, before the failure "
                    "reaches ashvault's own retry (retry_attempts)."),
    cfg.ListOpt("retry_error_codes", default=["429"], **_cinder("backup_gcs_retry_error_codes"),
                help="HTTP status codes retried besides the ones Google's client always retries (408, 429, 500, "
                     "502, 503, 504)."),
    cfg.StrOpt("checksum", default="crc32c", choices=["crc32c", "md5"],
               help="Checksum sent with each upload (the server refuses a body that does not match it) and "
                    "checked on each download."),
    cfg.StrOpt("user_agent", default="gcscinder", **_cinder("backup_gcs_user_agent"),
               help="Added to the User-Agent header of every request."),
    cfg.URIOpt("proxy_url", secret=True, **_cinder("backup_gcs_proxy_url"),
               help="HTTP(S) proxy for every request, e.g. http://proxy:3128 (Cinder exported it as "
                    "$http_proxy; ashvault gives it to its own HTTP session only). Secret, since it may hold "
                    "user:password."),
    cfg.BoolOpt("enable_progress_timer", default=True, **_cinder("backup_gcs_enable_progress_timer"),
                help="Accepted for cinder.conf compatibility and not used: the core reports progress of every "
                     "backup and restore."),
    cfg.FloatOpt("timeout", default=60.0, min=1,
                 help="Seconds a request may wait for the server before it counts as a transient failure."),
    *chunked_driver_opts(
        cinder={"object_size": "backup_gcs_object_size", "block_size": "backup_gcs_block_size",
                "container": "backup_gcs_bucket"},
        object_size=50 * MiB,
        block_size=32768,
        container=None,
        retry_attempts=2,
        retry_backoff=2.0,
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, google_opts)]
