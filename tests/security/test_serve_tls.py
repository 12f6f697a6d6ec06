"""``spe serve --tls-cert/--tls-key``: a small site without a proxy serves HTTPS itself,
with a certificate from a test CA that clients verify. A WES run completes over it; HSTS
is sent; plain HTTP, old protocols and weak ciphers are refused; a certificate and key
that do not belong together stop the server at start with a plain message."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import ROOT, WES, Server
from tests.tls_ca import TestCa, other_ca

HSTS = "max-age=63072000"
REFUSED = "alert|UNEXPECTED_EOF"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("serve-ca"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
               ca: TestCa) -> Iterator[Server]:
    cert = ca.issue("spe-serve")
    server = Server(home=tmp_path_factory.mktemp("tls-serve-home"), catalog=catalog_dir,
                    ca_file=ca.pem,
                    serve_args=("--tls-cert", str(cert.cert), "--tls-key", str(cert.key)))
    server.start()
    yield server
    server.stop()


def test_a_wes_run_completes_over_https(tls_server: Server) -> None:
    api = tls_server.api("hana")
    assert api.base.startswith("https://localhost:")
    submitted = api.submit("sleepy", {"seconds": 0})
    assert submitted.headers["Strict-Transport-Security"] == HSTS
    run_id = api.run_id(submitted)
    assert api.wait(run_id) == "COMPLETE"
    run = api.get(f"{WES}/runs/{run_id}").json()
    assert run["task_logs_url"].startswith(f"{api.base}/")  # the scheme the client used
    # no proxy is trusted: forwarded headers change neither the scheme nor the host
    spoofed = api.get(f"{WES}/runs/{run_id}", headers={
        "X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.example",
        "Forwarded": "host=evil.example;proto=http"}).json()
    assert spoofed["task_logs_url"] == run["task_logs_url"]


def test_the_reviewer_page_is_served_over_https(tls_server: Server, ca: TestCa) -> None:
    resp = requests.get(f"{tls_server.url}/spe/ui/", verify=str(ca.pem), timeout=30)
    assert resp.status_code == 200
    assert resp.headers["Strict-Transport-Security"] == HSTS
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "server" not in {k.lower() for k in resp.headers}  # no "uvicorn" banner


def test_plain_http_and_unknown_cas_are_refused(tls_server: Server, tmp_path: Path) -> None:
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{tls_server.port}/healthz", timeout=10)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls_server.url}/healthz", verify=str(other_ca(tmp_path).pem),
                     timeout=10)


def _handshake(port: int, ca: TestCa, version: ssl.TLSVersion, ciphers: str) -> str:
    context = ssl.create_default_context(cafile=str(ca.pem))
    context.minimum_version = context.maximum_version = version
    context.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        return str(tls.version())


def test_only_modern_protocols_and_ciphers(tls_server: Server, ca: TestCa) -> None:
    port = tls_server.port
    assert _handshake(port, ca, ssl.TLSVersion.TLSv1_3, "DEFAULT") == "TLSv1.3"
    assert _handshake(port, ca, ssl.TLSVersion.TLSv1_2,
                      "ECDHE-ECDSA-CHACHA20-POLY1305") == "TLSv1.2"
    # refused by the server: an alert, or (asyncio's TLS) the connection closed at once;
    # never this client's own "no ciphers/protocols available"
    with pytest.raises(ssl.SSLError, match=REFUSED):
        _handshake(port, ca, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-SHA")
    with pytest.raises(ssl.SSLError, match=REFUSED), \
            warnings.catch_warnings(category=DeprecationWarning, action="ignore"):
        _handshake(port, ca, ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0")


def test_a_key_of_another_certificate_stops_the_server(tmp_path: Path, ca: TestCa,
                                                       catalog_dir: Path) -> None:
    one, two = ca.issue("one"), ca.issue("two")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    result = subprocess.run(
        [sys.executable, "-m", "spe.cli.main", "serve", "--port", "0",
         "--tls-cert", str(one.cert), "--tls-key", str(two.key)],
        env={"PATH": "/usr/bin:/bin", "SPE_HOME": str(home),
             "SPE_CATALOG_DIR": str(catalog_dir)},
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stderr
    assert "cannot use the TLS certificate" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_certificate_without_its_key_is_refused(tmp_path: Path, ca: TestCa) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "spe.cli.main", "serve", "--tls-cert",
         str(ca.issue("alone").cert)],
        env={"PATH": "/usr/bin:/bin", "SPE_HOME": str(tmp_path / "home")},
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "tls_cert_file and tls_key_file go together" in result.stderr
