"""The transport-security settings checked together (``Settings._check``): the trusted
proxies, the service's own certificate, and the CA bundles of the backing services.
Each CA file belongs to a URL that uses TLS, so a CA set beside a plain URL is an error,
not a silent downgrade."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from spe.config import Settings


def proxy_networks(values: tuple[str, ...]) -> list[ipaddress.IPv4Network
                                                  | ipaddress.IPv6Network]:
    """Each trusted proxy as a network; a bare address is a /32 (/128). Host names and
    ``*`` are refused: trust is by the address a request arrives from."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {value!r} is not an IP address or network "
                             "(CIDR)") from exc
    return networks


def _readable(name: str, path: Path | None) -> None:
    if path is not None and not path.is_file():
        raise ValueError(f"{name}: {path} is not a file")


def check_transport_security(settings: Settings) -> None:
    """Refuse contradictory or incomplete TLS settings (see the module docstring)."""
    proxy_networks(settings.trusted_proxies)
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise ValueError("tls_cert_file and tls_key_file go together")
    for name in ("tls_cert_file", "tls_key_file", "database_ca_file", "redis_ca_file",
                 "s3_ca_file"):
        _readable(name, getattr(settings, name))
    if settings.database_ca_file is not None and \
            not settings.database_url.startswith("postgresql"):
        raise ValueError("database_ca_file needs a PostgreSQL database_url")
    if settings.redis_ca_file is not None and not settings.redis_url.startswith("rediss://"):
        raise ValueError("redis_ca_file needs a rediss:// redis_url (Redis over TLS)")
    if settings.s3_ca_file is not None and settings.s3_endpoint_url.startswith("http://"):
        raise ValueError("s3_ca_file needs an https:// s3_endpoint_url")


def verified_database_url(url: str, ca_file: Path | None) -> str:
    """``url`` with ``sslmode=verify-full`` and ``sslrootcert=ca_file`` (libpq's names)
    when a CA file is given; a weaker sslmode written in the URL is replaced."""
    if ca_file is None:
        return url
    parsed = make_url(url).update_query_dict({"sslmode": "verify-full",
                                              "sslrootcert": str(ca_file)})
    return parsed.render_as_string(hide_password=False)
