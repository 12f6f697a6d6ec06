"""Transport security without servers: forwarded headers believed only from trusted
proxies, HSTS over https only, the TLS settings refused when they contradict their URLs,
the Celery TLS options, the server TLS context, and the nginx body limit kept equal to the
service's. (The real nginx, PostgreSQL, Redis and S3 over TLS: tests/security/.)"""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from spe.adapters.queue.celery import BrokerOptions, celery_config
from spe.api.headers import security_headers
from spe.api.proxy import TrustedProxies
from spe.cli.serving import server_context, uvicorn_options
from spe.config import Settings
from spe.config_tls import verified_database_url
from tests.helpers import ROOT
from tests.tls_ca import TestCa

SPOOFED = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https"),
           (b"x-forwarded-host", b"evil.example"), (b"forwarded", b"for=192.0.2.1"),
           (b"host", b"spe.example.org")]


def _seen(trusted: tuple[str, ...], peer: str, headers: list[tuple[bytes, bytes]]
          ) -> dict[str, Any]:
    """The scope the application sees behind TrustedProxies."""
    seen: dict[str, Any] = {}

    async def app(scope: Any, _receive: Any, _send: Any) -> None:
        seen.update(scope)

    scope = {"type": "http", "scheme": "http", "client": (peer, 5555), "headers": headers,
             "path": "/", "method": "GET"}
    asyncio.run(TrustedProxies(app, trusted)(scope, None, None))  # type: ignore[arg-type]
    return seen


def test_an_untrusted_peer_cannot_set_client_scheme_or_forwarding_headers() -> None:
    seen = _seen(("10.0.0.5",), "10.0.0.6", SPOOFED)
    assert seen["client"] == ("10.0.0.6", 5555)
    assert seen["scheme"] == "http"
    assert seen["headers"] == [(b"host", b"spe.example.org")]


def test_with_no_trusted_proxy_nobody_sets_them() -> None:
    seen = _seen((), "127.0.0.1", SPOOFED)
    assert seen["client"] == ("127.0.0.1", 5555) and seen["scheme"] == "http"


@pytest.mark.parametrize("trusted", [("10.0.0.5",), ("10.0.0.0/24",), ("::1", "10.0.0.5")])
def test_a_trusted_proxy_sets_client_and_scheme_and_the_headers_go(
        trusted: tuple[str, ...]) -> None:
    seen = _seen(trusted, "10.0.0.5", SPOOFED)
    assert seen["client"][0] == "203.0.113.9"
    assert seen["scheme"] == "https"
    assert seen["headers"] == [(b"host", b"spe.example.org")]


def test_a_chain_ends_at_the_first_address_that_is_not_a_proxy() -> None:
    chain = [(b"x-forwarded-for", b"198.51.100.1, 203.0.113.9, 10.0.0.7")]
    seen = _seen(("10.0.0.0/24",), "10.0.0.5", chain)
    assert seen["client"][0] == "203.0.113.9"  # 198.51.100.1 was made up by the client


def test_hsts_is_sent_over_https_only() -> None:
    assert b"strict-transport-security" not in security_headers("/healthz", "http")
    assert security_headers("/healthz", "https")[b"strict-transport-security"] == \
        b"max-age=63072000"


# --- settings -----------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "message"), [
    ({"trusted_proxies": ("*",)}, "not an IP address or network"),
    ({"trusted_proxies": ("proxy.example.org",)}, "not an IP address or network"),
    ({"tls_cert_file": "CA"}, "go together"),
    ({"tls_cert_file": "CA", "tls_key_file": "/nonexistent"}, "is not a file"),
    ({"database_ca_file": "CA"}, "needs a PostgreSQL database_url"),
    ({"redis_ca_file": "CA"}, "needs a rediss:// redis_url"),
    ({"s3_ca_file": "CA", "s3_endpoint_url": "http://127.0.0.1:9000"}, "needs an https://"),
])
def test_contradictory_tls_settings_are_refused(tmp_path: Path, options: dict[str, Any],
                                                message: str) -> None:
    ca = TestCa(tmp_path)
    values = {k: str(ca.pem) if v == "CA" else v for k, v in options.items()}
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(home=tmp_path, **values)


def test_trusted_proxies_come_from_the_environment_as_a_json_list(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPE_TRUSTED_PROXIES", '["127.0.0.1", "10.1.0.0/16"]')
    assert Settings(home=tmp_path).trusted_proxies == ("127.0.0.1", "10.1.0.0/16")


def test_a_database_ca_makes_every_connection_verify_full() -> None:
    url = verified_database_url("postgresql+psycopg://spe:s3cr%40t@db.example:5432/spe"
                                "?sslmode=prefer", Path("/etc/spe/db-ca.pem"))
    assert url == ("postgresql+psycopg://spe:s3cr%40t@db.example:5432/spe"
                   "?sslmode=verify-full&sslrootcert=%2Fetc%2Fspe%2Fdb-ca.pem")
    assert verified_database_url("sqlite:///x.db", None) == "sqlite:///x.db"


def test_rediss_brokers_verify_certificate_and_host_name() -> None:
    config = celery_config(BrokerOptions("rediss://:pw@redis.example:6380/0",
                                         ca_file="/etc/spe/redis-ca.pem"))
    wanted = {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/etc/spe/redis-ca.pem",
              "ssl_check_hostname": True}
    assert config["broker_use_ssl"] == wanted
    assert config["redis_backend_use_ssl"] == wanted
    assert "broker_use_ssl" not in celery_config(BrokerOptions("redis://127.0.0.1:6379/0"))


# --- the server's own TLS -----------------------------------------------------------------

def test_spe_serve_offers_tls_1_2_and_up_and_ignores_forwarded_headers_itself(
        tmp_path: Path) -> None:
    plain = uvicorn_options(Settings(home=tmp_path))
    assert plain == {"proxy_headers": False, "server_header": False}
    cert = TestCa(tmp_path).issue("api")
    options = uvicorn_options(Settings(home=tmp_path, tls_cert_file=cert.cert,
                                       tls_key_file=cert.key))
    context = options["ssl_context_factory"](None, None)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    names = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names and all("GCM" in n or "CHACHA20" in n for n in names)
    assert all(n.startswith("ECDHE-") for n in names)


def test_a_key_that_does_not_match_the_certificate_is_an_error(tmp_path: Path) -> None:
    ca = TestCa(tmp_path)
    with pytest.raises(ssl.SSLError):
        server_context(ca.issue("one").cert, ca.issue("two").key)


# --- nginx and the service agree ----------------------------------------------------------

def _nginx_size(value: str) -> int:
    units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}
    match = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
    assert match, value
    return int(match.group(1)) * units[match.group(2)]


def test_nginx_refuses_bodies_exactly_where_the_service_does(tmp_path: Path) -> None:
    conf = (ROOT / "deploy/nginx/spe-proxy.conf").read_text()
    sizes = re.findall(r"^client_max_body_size\s+(\S+);", conf, re.MULTILINE)
    assert len(sizes) == 1
    assert _nginx_size(sizes[0]) == Settings(home=tmp_path).max_request_bytes
