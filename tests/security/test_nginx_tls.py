"""TLS end to end: the shipped nginx configuration (``deploy/nginx``), run for real with a
certificate from a test CA, in front of a real ``spe serve`` that trusts forwarded headers
only from nginx's address.

Clients verify the certificate against the test CA only. A WES run goes to COMPLETE and
the reviewer page loads through the proxy; HSTS is sent once; an oversized body is
refused by nginx itself (413, the service never sees it); old protocols and weak ciphers
are refused in the handshake; and a client talking to the service directly, from an
address that is not the proxy's, cannot pass itself off as HTTPS or as another address.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import WES, Api, Server
from tests.nginx_server import NginxServer, NginxUnavailable, start_nginx
from tests.tls_ca import TestCa, other_ca

HSTS = "max-age=63072000"
MAX_BODY = 64 * 2**20  # deploy/nginx/spe-proxy.conf and SPE_MAX_REQUEST_BYTES
UNTRUSTED_PEER = "127.0.0.3"  # the service trusts 127.0.0.1, nginx's address, only


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
          ca: TestCa) -> Iterator[tuple[NginxServer, Server]]:
    server = Server(home=tmp_path_factory.mktemp("tls-home"), catalog=catalog_dir)
    try:
        nginx = start_nginx(upstream_port=server.port, cert=ca.issue("nginx"))
    except NginxUnavailable as exc:
        pytest.skip(f"nginx is not installed: {exc}")
    server.env_extra = {"SPE_TRUSTED_PROXIES": '["127.0.0.1"]',
                        "SPE_PUBLIC_URL": f"https://localhost:{nginx.https_port}"}
    try:
        server.start()
        yield nginx, server
    finally:
        server.stop()
        nginx.stop()


@pytest.fixture(scope="module")
def edge(stack: tuple[NginxServer, Server]) -> str:
    return f"https://localhost:{stack[0].https_port}"


def through_nginx(stack: tuple[NginxServer, Server], ca: TestCa, user: str,
                  groups: tuple[str, ...] = ("spe:demo",)) -> Api:
    nginx, server = stack
    return Api(f"https://localhost:{nginx.https_port}", server.token(user, groups=groups),
               verify=str(ca.pem))


def test_a_wes_run_completes_through_nginx_over_tls(stack: tuple[NginxServer, Server],
                                                    ca: TestCa, edge: str) -> None:
    api = through_nginx(stack, ca, "tara")
    submitted = api.submit("sleepy", {"seconds": 0})
    assert submitted.headers["Strict-Transport-Security"] == HSTS  # once, not doubled
    run_id = api.run_id(submitted)
    assert api.wait(run_id) == "COMPLETE"
    run = api.get(f"{WES}/runs/{run_id}")
    assert run.status_code == 200, run.text
    tasks = run.json()["task_logs_url"]
    assert tasks.startswith(f"{edge}/"), tasks  # links name the public URL
    assert api.get(tasks.removeprefix(edge)).status_code == 200


def test_the_reviewer_page_loads_through_nginx_with_security_headers(
        stack: tuple[NginxServer, Server], ca: TestCa, edge: str) -> None:
    resp = requests.get(f"{edge}/spe/ui/", verify=str(ca.pem), timeout=30)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "<html" in resp.text.lower()
    assert resp.headers["Strict-Transport-Security"] == HSTS
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["Server"] == "nginx"  # no version (server_tokens off)


def test_an_oversized_body_is_refused_by_nginx_with_413(
        stack: tuple[NginxServer, Server], ca: TestCa, edge: str) -> None:
    api = through_nginx(stack, ca, "olaf")
    resp = api.post(f"{WES}/runs", data=b"x" * (MAX_BODY + 1),
                    headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 413
    assert resp.json() == {"msg": "request body larger than this service accepts",
                           "status_code": 413}  # nginx's answer: the service words it apart
    assert resp.headers["Strict-Transport-Security"] == HSTS
    # streamed without a Content-Length: nginx counts and refuses as the bytes come
    chunks = (b"x" * 2**20 for _ in range(MAX_BODY // 2**20 + 1))
    streamed = api.post(f"{WES}/runs", data=chunks,
                        headers={"Content-Type": "application/octet-stream"})
    assert streamed.status_code == 413
    assert streamed.json()["msg"] == "request body larger than this service accepts"
    # a body under the limit (larger than nginx keeps in memory: it goes through a
    # temporary file) passes nginx and reaches the service, which refuses the form
    at_limit = api.post(f"{WES}/runs", data=b"x" * (2 * 2**20),
                        headers={"Content-Type": "application/octet-stream"})
    assert at_limit.status_code in (400, 415), at_limit.text  # the service's answer
    assert at_limit.json()["status_code"] == at_limit.status_code


def test_a_client_that_does_not_trust_the_test_ca_refuses_the_proxy(
        stack: tuple[NginxServer, Server], tmp_path: Path, edge: str) -> None:
    stranger = other_ca(tmp_path)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{edge}/healthz", verify=str(stranger.pem), timeout=10)


def _handshake(port: int, ca: TestCa, *, name: str | None = "localhost",
               version: ssl.TLSVersion | None = None, ciphers: str | None = None) -> str:
    context = ssl.create_default_context(cafile=str(ca.pem))
    if name is None:
        context.check_hostname = False
    if version is not None:
        context.minimum_version = context.maximum_version = version
    if ciphers is not None:
        context.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        return str(tls.version())


def test_only_modern_protocols_and_ciphers_are_accepted(
        stack: tuple[NginxServer, Server], ca: TestCa) -> None:
    port = stack[0].https_port
    assert _handshake(port, ca) == "TLSv1.3"
    assert _handshake(port, ca, version=ssl.TLSVersion.TLSv1_2,
                      ciphers="ECDHE-ECDSA-AES128-GCM-SHA256") == "TLSv1.2"
    # the server answers with an alert: these are refused there, not by this client
    with pytest.raises(ssl.SSLError, match="alert"):
        _handshake(port, ca, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-SHA")
    with pytest.raises(ssl.SSLError, match="alert protocol version"), \
            warnings.catch_warnings(category=DeprecationWarning, action="ignore"):
        _handshake(port, ca, version=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT:@SECLEVEL=0")
    # no server name (a client dialling the bare address): the default server refuses
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        _handshake(port, ca, name=None)


def test_plain_http_is_sent_to_https(stack: tuple[NginxServer, Server]) -> None:
    resp = requests.get(f"http://localhost:{stack[0].http_port}/spe/ui/?x=1",
                        allow_redirects=False, timeout=10)
    assert resp.status_code == 301
    assert resp.headers["Location"] == "https://localhost/spe/ui/?x=1"


def test_metrics_are_not_served_through_the_public_edge(
        stack: tuple[NginxServer, Server], ca: TestCa, edge: str) -> None:
    resp = requests.get(f"{edge}/metrics", verify=str(ca.pem), timeout=10)
    assert resp.status_code == 404


# --- forwarded headers: believed from nginx only ----------------------------------------

def _direct(server: Server, source: str, headers: dict[str, str],
            path: str = "/healthz") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30,
                                      source_address=(source, 0))
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


SPOOF = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
         "Forwarded": "for=192.0.2.66;proto=https"}


def test_an_untrusted_peer_cannot_claim_https(stack: tuple[NginxServer, Server]) -> None:
    server = stack[1]
    assert _direct(server, UNTRUSTED_PEER, SPOOF).getheader("Strict-Transport-Security") \
        is None
    # the same header from the trusted address is believed (so the check above means it)
    trusted = _direct(server, "127.0.0.1", {"X-Forwarded-Proto": "https"})
    assert trusted.getheader("Strict-Transport-Security") == HSTS


def _audited_failures(server: Server) -> list[dict[str, Any]]:
    operator = Api(server.url, server.token("olga-operator", groups=("spe:operators",)))
    resp = operator.get("/spe/v1/audit", params={"action": "auth.failure", "page_size": 500})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["events"])


def test_client_addresses_come_from_nginx_not_from_the_client(
        stack: tuple[NginxServer, Server], ca: TestCa, edge: str) -> None:
    server = stack[1]
    forged = {"X-Forwarded-For": "198.51.100.7"}
    # through nginx: nginx replaces the client's X-Forwarded-For with the real address
    resp = requests.get(f"{edge}/spe/v1/me", verify=str(ca.pem), timeout=30,
                        headers={"Authorization": "Bearer forged-through-nginx", **forged})
    assert resp.status_code == 401
    # directly, from an address that is not the proxy's: the header is ignored
    direct = _direct(server, UNTRUSTED_PEER, {"Authorization": "Bearer forged-directly",
                                              **forged}, "/spe/v1/me")
    assert direct.status == 401
    targets = {e["target"] for e in _audited_failures(server)}
    assert "198.51.100.7" not in targets
    assert {"127.0.0.1", UNTRUSTED_PEER} <= targets
