"""A real nginx (Debian's ``nginx`` package) running the shipped ``deploy/nginx`` files, on
loopback, with a private prefix: nothing outside that folder is read or written (no change
to ``/etc/nginx``).

``render_site`` turns ``deploy/nginx/spe.conf`` into a test site by replacing its SITE
values (ports, name, certificate, upstream) and dropping its IPv6 listeners; every
replacement must match, so a change to the shipped file that the tests would no longer
exercise fails here. ``start_nginx(root, ...)`` writes ``nginx.conf`` + the snippets into
``root`` and runs ``nginx -p root -c nginx.conf -e error.log -g 'daemon off;'``;
``.stop()`` stops it by pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.helpers import ROOT, free_port
from tests.tiers import starting
from tests.tls_ca import ServerCert

DEPLOY = ROOT / "deploy" / "nginx"
NGINX = Path("/usr/sbin/nginx")
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0

MAIN_CONF = """\
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 128; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {root}/access.log;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    include sites/spe.conf;
}}
"""


class NginxUnavailable(RuntimeError):
    """No nginx binary on this machine."""


def render_site(text: str, *, https_port: int, http_port: int, upstream_port: int,
                server_name: str, cert: ServerCert) -> str:
    """``spe.conf`` with its SITE values replaced for a loopback test."""
    replacements = [
        ("    listen [::]:80;\n", ""),
        ("    listen [::]:443 ssl default_server;\n", ""),
        ("    listen [::]:443 ssl http2;\n", ""),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl"),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};"),
        ("server_name spe.example.org;", f"server_name {server_name};"),
        ("/etc/ssl/spe/fullchain.pem", str(cert.cert)),
        ("/etc/ssl/spe/privkey.pem", str(cert.key)),
    ]
    for old, new in replacements:
        if old not in text:
            raise AssertionError(f"deploy/nginx/spe.conf no longer contains {old!r}")
        text = text.replace(old, new)
    return text


@dataclass
class NginxServer:
    root: Path
    https_port: int
    http_port: int
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def log_tail(self, n: int = 3000) -> str:
        parts = []
        for name in ("error.log", "stderr.log"):
            path = self.root / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-n:])
        return "\n".join(parts)

    def access_log(self) -> str:
        path = self.root / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            with contextlib.suppress(OSError), \
                    socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                return
            time.sleep(0.05)
        raise RuntimeError(f"nginx not listening after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGQUIT (graceful), SIGKILL after STOP_TIMEOUT; the prefix folder is removed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(3)  # SIGQUIT: finish the requests in flight
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.root, ignore_errors=True)


def _prefix() -> Path:
    """A fresh folder in the system temp dir: nginx's workers (``nobody`` when the tests
    run as root) must reach its tmp/ for request bodies; pytest's temp root is private."""
    root = Path(tempfile.mkdtemp(prefix="spe-nginx-"))
    root.chmod(0o711)
    (root / "snippets").mkdir()
    (root / "sites").mkdir()
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o711)  # nginx makes its folders in it, owned by the workers
    return root


def write_config(root: Path, *, upstream_port: int, cert: ServerCert, server_name: str,
                 https_port: int, http_port: int) -> Path:
    """nginx.conf, sites/spe.conf (rendered) and the two shipped snippets, verbatim."""
    for name in ("spe-tls.conf", "spe-proxy.conf"):
        shutil.copyfile(DEPLOY / name, root / "snippets" / name)
    site = render_site((DEPLOY / "spe.conf").read_text(), https_port=https_port,
                       http_port=http_port, upstream_port=upstream_port,
                       server_name=server_name, cert=cert)
    (root / "sites" / "spe.conf").write_text(site)
    conf = root / "nginx.conf"
    conf.write_text(MAIN_CONF.format(root=root))
    return conf


def check_config(root: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on the prefix's configuration."""
    return subprocess.run([str(NGINX), "-t", "-p", str(root), "-c", "nginx.conf",
                           "-e", str(root / "error.log")],
                          capture_output=True, text=True, timeout=30, check=False)


def start_nginx(*, upstream_port: int, cert: ServerCert, server_name: str = "localhost",
                attempts: int = 3) -> NginxServer:
    """nginx with the shipped configuration in front of ``127.0.0.1:upstream_port``."""
    starting("nginx")
    if not NGINX.is_file():
        raise NginxUnavailable(f"no {NGINX} (install the Debian package 'nginx': "
                               "scripts/install-test-deps.sh)")
    for attempt in range(attempts):  # a free port may be taken before nginx binds it
        root = _prefix()
        server = NginxServer(root, free_port(), free_port())
        write_config(root, upstream_port=upstream_port, cert=cert, server_name=server_name,
                     https_port=server.https_port, http_port=server.http_port)
        server._log = (root / "stderr.log").open("ab")
        server.process = subprocess.Popen(
            [str(NGINX), "-p", str(root), "-c", "nginx.conf", "-e", str(root / "error.log"),
             "-g", "daemon off;"], stdin=subprocess.DEVNULL, stdout=server._log,
            stderr=subprocess.STDOUT, start_new_session=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        try:
            server.wait_ready()
            return server
        except RuntimeError:
            server.stop()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
