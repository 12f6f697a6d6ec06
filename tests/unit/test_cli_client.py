"""The CLI's HTTP client against a scripted loopback server in this process: what it
retries (reads, keyed submissions), what it never repeats (a POST without a key), how long
it waits (``Retry-After``), and a download whose bytes do not match the request."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from spe.cli.client import WesClient
from spe.cli.errors import ApiError, CliError
from spe.cli.release import _fetch

Reply = tuple[int, dict[str, str], bytes]


class Script:
    """Answers each request with the next scripted reply (the last one repeats)."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.seen: list[tuple[str, str, str]] = []  # method, path, Idempotency-Key

    def next(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@pytest.fixture
def script() -> Iterator[tuple[Script, str]]:
    plan = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            plan.seen.append((self.command, self.path,
                              self.headers.get("Idempotency-Key", "")))
            status, headers, body = plan.next()
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer  # noqa: N815 - http.server's names

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield plan, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


BUSY: Reply = (503, {"Retry-After": "1"}, b'{"msg": "busy", "status_code": 503}')
OK_RUN: Reply = (200, {}, b'{"run_id": "r1", "state": "RUNNING"}')


def test_a_read_is_retried_after_503_honouring_retry_after(script: tuple[Script, str]) -> None:
    plan, url = script
    plan.replies = [BUSY, OK_RUN]
    started = time.monotonic()
    assert WesClient(url, "t").status("r1")["state"] == "RUNNING"
    assert time.monotonic() - started >= 0.9  # Retry-After: 1
    assert [s[0] for s in plan.seen] == ["GET", "GET"]


def test_a_post_without_a_key_is_never_repeated(script: tuple[Script, str]) -> None:
    plan, url = script
    plan.replies = [BUSY, OK_RUN]
    with pytest.raises(ApiError, match="HTTP 503: busy"):
        WesClient(url, "t").cancel("r1")
    assert len(plan.seen) == 1


def test_a_keyed_submission_is_retried_with_the_same_key(script: tuple[Script, str]) -> None:
    plan, url = script
    plan.replies = [(502, {}, b"bad gateway"), OK_RUN]
    assert WesClient(url, "t").submit({"workflow_url": "w"}, "key-1") == "r1"
    assert [(s[0], s[2]) for s in plan.seen] == [("POST", "key-1"), ("POST", "key-1")]


def test_retries_give_up_with_the_servers_message(script: tuple[Script, str]) -> None:
    plan, url = script
    plan.replies = [(503, {}, b'{"msg": "still busy", "status_code": 503}')]
    with pytest.raises(ApiError, match="still busy"):
        WesClient(url, "t", retries=1).status("r1")
    assert len(plan.seen) == 2


def test_a_download_that_does_not_match_its_sha256_leaves_nothing(
        script: tuple[Script, str], tmp_path: Path) -> None:
    plan, url = script
    plan.replies = [(200, {"Content-Type": "application/octet-stream"}, b"tampered")]
    entry = {"path": "results/a.csv", "size": 8,
             "sha256": hashlib.sha256(b"original").hexdigest()}
    with pytest.raises(CliError, match="does not match the request"):
        _fetch(WesClient(url, "t"), "req1", entry, tmp_path)
    assert list(tmp_path.rglob("*.csv*")) == []


def test_a_download_that_matches_is_kept(script: tuple[Script, str], tmp_path: Path) -> None:
    plan, url = script
    plan.replies = [(200, {"Content-Type": "application/octet-stream"}, b"original")]
    entry = {"path": "results/a.csv", "size": 8,
             "sha256": hashlib.sha256(b"original").hexdigest()}
    target = _fetch(WesClient(url, "t"), "req1", entry, tmp_path)
    assert target.read_bytes() == b"original"
    assert plan.seen[0][1] == "/spe/v1/release-requests/req1/download?path=results%2Fa.csv"
