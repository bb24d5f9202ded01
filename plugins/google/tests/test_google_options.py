"""Cinder's gcs options and names, and the three kinds of credentials (service account, ADC, anonymous)."""

from __future__ import annotations

import json
import pathlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from oslo_config import cfg

from ashvault import exceptions, plugins
from ashvault.conf import make_config, register_group
from ashvault_google.google import GoogleBackupDriver

CINDER = {  # Cinder's name, a value, and the option it lands in
    "backup_gcs_bucket": ("mybucket", "container", "mybucket"),
    "backup_gcs_object_size": ("8388608", "object_size", 8388608),
    "backup_gcs_block_size": ("65536", "block_size", 65536),
    "backup_gcs_reader_chunk_size": ("1048576", "reader_chunk_size", 1048576),
    "backup_gcs_writer_chunk_size": ("-1", "writer_chunk_size", -1),
    "backup_gcs_num_retries": ("5", "num_retries", 5),
    "backup_gcs_retry_error_codes": ("429,408", "retry_error_codes", ["429", "408"]),
    "backup_gcs_bucket_location": ("EU", "bucket_location", "EU"),
    "backup_gcs_storage_class": ("STANDARD", "storage_class", "STANDARD"),
    "backup_gcs_credential_file": ("/etc/cinder/gcs.json", "credential_file", "/etc/cinder/gcs.json"),
    "backup_gcs_project_id": ("my-project", "project_id", "my-project"),
    "backup_gcs_user_agent": ("ua-test", "user_agent", "ua-test"),
    "backup_gcs_enable_progress_timer": ("false", "enable_progress_timer", False),
    "backup_gcs_proxy_url": ("http://proxy:3128", "proxy_url", "http://proxy:3128"),
}
CINDER_DEFAULTS = {"container": None, "object_size": 52428800, "block_size": 32768, "reader_chunk_size": 2097152,
                   "writer_chunk_size": 2097152, "num_retries": 3, "retry_error_codes": ["429"],
                   "bucket_location": "US", "storage_class": "NEARLINE", "credential_file": None,
                   "project_id": None, "user_agent": "gcscinder", "enable_progress_timer": True, "proxy_url": None}


def _conf(tmp_path: pathlib.Path, text: str) -> cfg.ConfigOpts:
    path = tmp_path / "cinder.conf"
    path.write_text(text)
    conf = make_config([], config_files=[str(path)])
    register_group(conf, GoogleBackupDriver.option_group, GoogleBackupDriver.get_driver_options())
    return conf


def test_cinder_names_and_defaults(tmp_path: pathlib.Path) -> None:
    opts = _conf(tmp_path, "[DEFAULT]\n").backup_google
    assert {name: opts[name] for name in CINDER_DEFAULTS} == CINDER_DEFAULTS
    lines = "".join(f"{name} = {value}\n" for name, (value, _opt, _want) in CINDER.items())
    opts = _conf(tmp_path, f"[DEFAULT]\n{lines}").backup_google
    assert {opt: opts[opt] for _v, opt, _w in CINDER.values()} == {opt: want for _v, opt, want in CINDER.values()}


@pytest.mark.parametrize("value", ["gcs", "google", "cinder.backup.drivers.gcs.GoogleBackupDriver",
                                   "cinder.backup.drivers.gcs"])
def test_driver_names(value: str) -> None:
    assert plugins.driver_name(value) == "google"


@pytest.fixture
def token_server() -> Iterator[dict[str, Any]]:
    """An OAuth2 token endpoint on 127.0.0.1 that grants ``tok-granted`` (or refuses, when told)."""
    state: dict[str, Any] = {"calls": 0, "refuse": False}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state["calls"] += 1
            if state["refuse"]:
                status, body = 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            else:
                status, body = 200, {"access_token": "tok-granted", "expires_in": 3600, "token_type": "Bearer"}
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/token"
    yield state
    server.shutdown()
    server.server_close()


def _service_account(tmp_path: pathlib.Path, token_uri: str) -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": "sa-project", "private_key_id": "k1", "private_key": pem,
            "client_email": "backup@sa-project.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": token_uri}
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(info))
    return str(path), pem


def test_service_account_file_gets_a_token_and_uses_it(driver_conf: Callable[..., cfg.ConfigOpts], proxy: Any,
                                                       token_server: dict[str, Any], tmp_path: pathlib.Path) -> None:
    path, _pem = _service_account(tmp_path, token_server["url"])
    driver = GoogleBackupDriver(driver_conf(anonymous=False, credential_file=path, endpoint=proxy.url))
    driver.check_for_setup_error()
    driver.store.put_container(driver.default_container)
    driver.store.put_object(driver.default_container, "x", b"signed in")
    assert driver.store.get_object(driver.default_container, "x") == b"signed in"
    assert token_server["calls"] >= 1
    assert proxy.authorizations and set(proxy.authorizations) == {"Bearer tok-granted"}
    driver.close()


def test_refused_token_is_an_authentication_error_without_secrets(
        driver_conf: Callable[..., cfg.ConfigOpts], token_server: dict[str, Any], tmp_path: pathlib.Path) -> None:
    token_server["refuse"] = True
    path, pem = _service_account(tmp_path, token_server["url"])
    driver = GoogleBackupDriver(driver_conf(anonymous=False, credential_file=path, num_retries=0,
                                            retry_attempts=1))
    with pytest.raises(exceptions.DriverSetupError, match="invalid_grant") as err:
        driver.check_for_setup_error()
    with pytest.raises(exceptions.AuthenticationFailed):
        driver.store.put_container(driver.default_container)
    key_body = pem.splitlines()[5]
    assert key_body not in str(err.value) and "PRIVATE KEY" not in str(err.value)
    driver.close()


def test_bad_credential_files_name_the_file_not_its_content(driver_conf: Callable[..., cfg.ConfigOpts],
                                                            tmp_path: pathlib.Path) -> None:
    path, pem = _service_account(tmp_path, "http://127.0.0.1:9/token")
    info = json.loads(pathlib.Path(path).read_text())
    del info["client_email"]
    pathlib.Path(path).write_text(json.dumps(info))
    for file, reason in ((path, "is not a service-account JSON key"), (str(tmp_path / "none.json"), "cannot read")):
        driver = GoogleBackupDriver(driver_conf(anonymous=False, credential_file=file))
        with pytest.raises(exceptions.DriverSetupError, match=reason) as err:
            driver.check_for_setup_error()
        assert file in str(err.value) and pem.splitlines()[5] not in str(err.value)


def test_no_credentials_at_all_is_one_clear_error(driver_conf: Callable[..., cfg.ConfigOpts],
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    driver = GoogleBackupDriver(driver_conf(anonymous=False))
    with pytest.raises(exceptions.DriverSetupError, match="no Google credentials: set credential_file"):
        driver.check_for_setup_error()


def test_bad_writer_chunk_size_and_retry_codes(driver_conf: Callable[..., cfg.ConfigOpts]) -> None:
    with pytest.raises(exceptions.DriverSetupError, match="multiple of 262144"):
        GoogleBackupDriver(driver_conf(writer_chunk_size=1000)).check_for_setup_error()
    with pytest.raises(exceptions.DriverSetupError, match="'abc' is not an HTTP status code"):
        GoogleBackupDriver(driver_conf(retry_error_codes=["abc"])).check_for_setup_error()


def test_driver_show_masks_the_proxy_url(tmp_path: pathlib.Path) -> None:
    from clitools import Ashvault

    av = Ashvault(tmp_path)
    av.write_conf("backup_gcs_bucket = b-masked\nbackup_gcs_proxy_url = http://user:s3cret@127.0.0.1:1/\n",
                  driver="gcs")
    res = av("driver", "show", "google", "-f", "json")
    shown = json.loads(res.out)
    assert shown["options"]["proxy_url"] == "****" and "s3cret" not in res.out + res.err
    assert shown["options"]["container"] == "b-masked"
