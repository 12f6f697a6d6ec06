"""How `spe serve` runs uvicorn: plain HTTP behind a proxy, or HTTPS itself.

Uvicorn's own proxy-header handling is switched off (by default it believes
``X-Forwarded-*`` from any loopback peer); ``spe.api.proxy.TrustedProxies`` inside the
application believes them only from ``trusted_proxies``. With a certificate, the server
speaks TLS 1.2 and 1.3 only, with forward-secret AEAD ciphers for TLS 1.2 (TLS 1.3's
suites all are), the same set as ``deploy/nginx/spe-tls.conf``.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from spe.config import Settings

MIGRATION_TIMEOUT = 3600.0  # seconds: a long migration of a big database may take a while

# Mozilla's "intermediate" TLS 1.2 suites without DHE (no dhparam to manage)
TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
])


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server-side TLS context: TLS >= 1.2, the ciphers above, no renegotiation, no
    compression, no session tickets (their key would outlive the process's memory)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    context.load_cert_chain(cert_file, key_file)
    return context


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` that concern the transport."""
    options: dict[str, Any] = {"proxy_headers": False, "server_header": False}
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is not None and key is not None:
        server_context(cert, key)  # fails now, with the file's name, if unusable
        options["ssl_certfile"] = str(cert)  # uvicorn's "is TLS on" test reads this
        # picklable: with --workers, each process builds its own context from the files
        options["ssl_context_factory"] = partial(_context_factory, cert, key)
    return options


def _context_factory(cert: Path, key: Path, _config: object,
                     _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    return server_context(cert, key)


def migrate_apart() -> bool:
    """`spe db upgrade` in a child process, so that Alembic (about 10 MiB) never loads
    into the serving process; whether it succeeded (its error is on stderr)."""
    done = subprocess.run([sys.executable, "-m", "spe.cli.main", "db", "upgrade"],
                          stdout=subprocess.DEVNULL, timeout=MIGRATION_TIMEOUT, check=False)
    return done.returncode == 0
