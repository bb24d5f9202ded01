"""Options of the swift driver. Imports nothing but oslo.config, so the sample config never needs the backend.

Every option is also read under Cinder's ``[DEFAULT] backup_swift_*`` name, with Cinder's default.
"""

from __future__ import annotations

from oslo_config import cfg

from ashvault.conf import chunked_driver_opts

GROUP = "backup_swift"
MiB = 1 << 20


def _cinder(name: str, **kwargs: object) -> dict[str, object]:
    return {"deprecated_opts": [cfg.DeprecatedOpt(name, group="DEFAULT")], **kwargs}


swift_opts = [
    cfg.URIOpt("url", **_cinder("backup_swift_url"),
               help="per_user: the storage URL, to which $OS_PROJECT_ID is appended when it ends in '_' "
                    "(http://host:8080/v1/AUTH_). $OS_STORAGE_URL, when set, wins. Unused by single_user "
                    "(as in Cinder): the storage URL comes from authentication."),
    cfg.URIOpt("auth_url", **_cinder("backup_swift_auth_url"),
               help="single_user: the authentication endpoint, e.g. http://host:8080/auth/v1.0 (tempauth, "
                    "auth_version 1) or http://keystone:5000/v3."),
    cfg.StrOpt("auth", default="per_user", **_cinder("backup_swift_auth"),
               choices=[("per_user", "a token the user already has ($OS_AUTH_TOKEN) and a storage URL"),
                        ("single_user", "ashvault logs in with user and key")],
               help="Whose credentials reach Swift."),
    cfg.StrOpt("auth_version", default="1", **_cinder("backup_swift_auth_version"),
               choices=[("1", "Swift's own v1 authentication (tempauth, swauth)"),
                        ("2", "Keystone v2.0, through keystoneauth1"), ("3", "Keystone v3, through keystoneauth1")],
               help="single_user: the authentication protocol behind auth_url."),
    cfg.StrOpt("user", **_cinder("backup_swift_user"),
               help="single_user: user name; 'account:user' for auth_version 1."),
    cfg.StrOpt("key", secret=True, **_cinder("backup_swift_key"),
               help="single_user: the user's key or password. Never logged or shown."),
    cfg.StrOpt("tenant", **_cinder("backup_swift_tenant"),
               help="Keystone v2 tenant name (v3: used as the project name when project is unset)."),
    cfg.StrOpt("project", **_cinder("backup_swift_project"), help="Keystone v3 project name."),
    cfg.StrOpt("user_domain", **_cinder("backup_swift_user_domain"),
               help="Keystone v3 user domain name (default 'Default')."),
    cfg.StrOpt("project_domain", **_cinder("backup_swift_project_domain"),
               help="Keystone v3 project domain name (default 'Default')."),
    cfg.StrOpt("region_name", **_cinder("backup_swift_region_name"),
               help="Keystone: region whose object-store endpoint is used."),
    cfg.StrOpt("catalog_info", default="object-store:swift:publicURL",
               deprecated_opts=[cfg.DeprecatedOpt("swift_catalog_info", group="DEFAULT")],
               help="Keystone: <service_type>:<service_name>:<endpoint_type> of the storage endpoint in the "
                    "service catalog."),
    cfg.StrOpt("create_storage_policy", **_cinder("backup_swift_create_storage_policy"),
               help="Storage policy (X-Storage-Policy) given to containers ashvault creates; unset means the "
                    "cluster's default."),
    cfg.StrOpt("ca_cert_file", **_cinder("backup_swift_ca_cert_file"),
               help="CA bundle that signs the Swift and Keystone endpoints' certificates."),
    cfg.BoolOpt("auth_insecure", default=False, **_cinder("backup_swift_auth_insecure"),
                help="Skip TLS certificate checks (never in production)."),
    cfg.FloatOpt("timeout", default=60.0, min=1,
                 help="Seconds a request may wait for the server before it counts as a transient failure."),
    *chunked_driver_opts(
        cinder={"object_size": "backup_swift_object_size", "block_size": "backup_swift_block_size",
                "container": "backup_swift_container", "retry_attempts": "backup_swift_retry_attempts",
                "retry_backoff": "backup_swift_retry_backoff"},
        object_size=50 * MiB,
        block_size=32768,
        retry_attempts=3,
        retry_backoff=2.0,
    ),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, swift_opts)]
