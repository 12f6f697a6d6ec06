"""A loopback HTTP proxy that forwards requests to a real server and, for the first few
requests that match, cuts the client's connection after the server has answered: the
client sees a connection error although the server did the work (a response lost on the
way, as when a load balancer or the network fails mid-request)."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field

TIMEOUT = 30.0


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    lines = [line for line in head.split(b"\r\n")
             if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body


@dataclass
class CuttingProxy:
    upstream_port: int
    cut_prefix: bytes  # e.g. b"POST /ga4gh/wes/v1/runs "
    cuts: int = 1  # how many matching requests lose their response
    cut_done: int = 0
    forwarded: int = 0
    _sock: socket.socket = field(default_factory=socket.socket)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> CuttingProxy:
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def stop(self) -> None:
        self._sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(TIMEOUT)
            request = _read_request(conn)
            with socket.create_connection(("127.0.0.1", self.upstream_port),
                                          timeout=TIMEOUT) as up:
                up.sendall(request)
                response = b""
                while chunk := up.recv(65536):
                    response += chunk
            with self._lock:
                self.forwarded += 1
                cut = request.startswith(self.cut_prefix) and self.cut_done < self.cuts
                self.cut_done += cut
            if cut:
                conn.shutdown(socket.SHUT_RDWR)  # the answer never reaches the client
                return
            conn.sendall(response)
