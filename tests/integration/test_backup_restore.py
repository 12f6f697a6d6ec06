"""``spe backup`` and ``spe restore`` on a home with runs and a released request, on
SQLite and on a real PostgreSQL (pg_dump/pg_restore): back up while the state is there,
wipe it, restore, and the service built again on the restored state shows the runs, the
release request and its released file, and the audit chain verifies against the
checkpoints written before the backup. A backup is private, and a tampered one, or a
restore over existing state without --force, is refused."""

from __future__ import annotations

import json
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from spe.app import create_app
from spe.cli.main import main
from spe.config import Settings
from spe.domain.ports import ExecutorChoice
from tests.fakes import FakeExecutor, ResultsEngine
from tests.helpers import WES
from tests.inprocess.harness import InProcess
from tests.postgres import PostgresServer

RR = "/spe/v1/release-requests"
FILES = ["results/done.txt", "results/first.txt"]


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path, catalog_dir: Path) -> dict[str, str]:
    """The settings of one deployment, as the CLI reads them."""
    values = {"SPE_HOME": str(tmp_path / "home"), "SPE_CATALOG_DIR": str(catalog_dir),
              "SPE_AUDIT_CHECKPOINT_LOCATION": str(tmp_path / "checkpoints"),
              "SPE_RECONCILE_SECONDS": "0.05", "SPE_DATABASE_URL": ""}
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        values["SPE_DATABASE_URL"] = server.create_database()
    return values


@contextmanager
def service(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcess]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    executor = FakeExecutor()
    built = create_app(Settings(), choice=ExecutorChoice(executor))
    built.execution.engines["snakemake"] = ResultsEngine()
    with built.app.test_client() as client:
        yield InProcess(built, client, executor)


def cli(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def released_request(spe: InProcess, run_id: str) -> str:
    req = spe.post("alice", RR, json={"run_id": run_id, "files": FILES,
                                      "justification": "Aggregates only."}).json()
    for user in ("rita", "rex"):
        for path in FILES:
            vote = spe.post(user, f"{RR}/{req['id']}/votes",
                            json={"path": path, "decision": "approve", "reason": "Fine."})
            assert vote.status_code == 200, vote.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if spe.get("alice", f"{RR}/{req['id']}").json()["state"] == "RELEASED":
            return str(req["id"])
        time.sleep(0.05)
    raise AssertionError("the request was not released within 60 s")


def state_of(spe: InProcess) -> dict[str, Any]:
    runs = spe.get("alice", f"{WES}/runs").json()["runs"]
    requests = spe.get("alice", RR).json()
    return {"runs": sorted((r["run_id"], r["state"]) for r in runs),
            "requests": sorted((r["id"], r["state"]) for r in requests["requests"])}


def wipe(env: dict[str, str], request: pytest.FixtureRequest) -> None:
    shutil.rmtree(env["SPE_HOME"])
    if env["SPE_DATABASE_URL"]:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        server.reset_schema(env["SPE_DATABASE_URL"].rsplit("/", 1)[-1])


def test_backup_wipe_restore_keeps_runs_releases_and_a_verifying_audit_chain(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    with service(env, monkeypatch) as spe:
        done = spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0}))
        spe.wait("alice", done)
        failed = spe.run_id(spe.submit("alice", "sleepy", {"fail": True}))
        spe.wait("alice", failed)
        req_id = released_request(spe, done)
        before = state_of(spe)
        released = spe.get("alice", f"{RR}/{req_id}/download", params={"path": FILES[0]})
        assert released.status_code == 200
    assert cli(env, "audit", "verify", "--checkpoint").exit_code == 0

    dest = tmp_path / "backup"
    made = cli(env, "backup", str(dest))
    assert made.exit_code == 0, made.output
    manifest = json.loads((dest / "manifest.json").read_text())
    roles = {entry["role"] for entry in manifest["files"].values()}
    assert {"database", "page-key", "issuer-key", "checkpoint-key", "catalog", "quarantine",
            "outbox"} <= roles
    for path in [dest, *dest.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))

    refused = cli(env, "restore", str(dest))  # the state is still there
    assert refused.exit_code != 0 and "refusing to overwrite" in refused.output
    wipe(env, request)
    restored = cli(env, "restore", str(dest))
    assert restored.exit_code == 0, restored.output

    audit = cli(env, "audit", "verify", "--checkpoint")
    assert audit.exit_code == 0, audit.output
    assert "chain intact" in audit.output and "agree with the log" in audit.output
    with service(env, monkeypatch) as spe:
        assert state_of(spe) == before
        assert (done, "COMPLETE") in before["runs"] and (failed, "EXECUTOR_ERROR") in \
            before["runs"] and before["requests"] == [(req_id, "RELEASED")]
        again = spe.get("alice", f"{RR}/{req_id}/download", params={"path": FILES[0]})
        assert again.status_code == 200 and again.content == released.content
        spe.get("bob", f"{WES}/runs")  # the restored keys still sign and verify tokens
    assert cli(env, "audit", "verify", "--checkpoint").exit_code == 0


@pytest.mark.parametrize("env", ["postgres"], indirect=True)
def test_a_postgres_restore_into_a_database_with_tables_needs_force(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with service(env, monkeypatch) as spe:
        spe.wait("alice", spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0})))
    assert cli(env, "backup", str(tmp_path / "b")).exit_code == 0
    shutil.rmtree(env["SPE_HOME"])  # an empty home, but the database still has its tables
    refused = cli(env, "restore", str(tmp_path / "b"))
    assert refused.exit_code != 0 and "database holds tables" in refused.output
    forced = cli(env, "restore", "--force", str(tmp_path / "b"))
    assert forced.exit_code == 0, forced.output
    assert cli(env, "audit", "verify", "--checkpoint").exit_code == 0


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_a_tampered_backup_is_refused_and_nothing_is_written(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with service(env, monkeypatch) as spe:
        spe.wait("alice", spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0})))
    dest = tmp_path / "b"
    assert cli(env, "backup", str(dest)).exit_code == 0
    assert cli(env, "backup", str(dest)).exit_code != 0  # never into a non-empty folder
    failed = cli({**env, "SPE_HOME": str(tmp_path / "nothing")}, "backup", str(tmp_path / "f"))
    assert failed.exit_code != 0 and "no database at" in failed.output
    assert list((tmp_path / "f").iterdir()) == []  # a failed backup leaves nothing behind
    shutil.rmtree(env["SPE_HOME"])
    key = dest / "keys" / "secret.key"
    key.write_text("0" * 64)
    (dest / "extra.txt").write_text("x")
    bad = cli(env, "restore", str(dest))
    assert bad.exit_code != 0
    assert "keys/secret.key: size or sha256 differs" in bad.output
    assert "extra.txt: not in the manifest" in bad.output
    assert not Path(env["SPE_HOME"]).exists()


@pytest.mark.parametrize("env", ["sqlite"], indirect=True)
def test_events_after_the_backup_show_as_a_truncation_after_restoring_it(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with service(env, monkeypatch) as spe:
        spe.wait("alice", spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0})))
    assert cli(env, "backup", str(tmp_path / "b")).exit_code == 0
    with service(env, monkeypatch) as spe:  # life goes on after the backup
        spe.wait("alice", spe.run_id(spe.submit("alice", "sleepy", {"seconds": 0})))
    shutil.rmtree(env["SPE_HOME"])
    assert cli(env, "restore", str(tmp_path / "b")).exit_code == 0
    lost = cli(env, "audit", "verify", "--checkpoint")
    assert lost.exit_code == 1 and "truncated" in lost.output


def test_the_database_password_goes_to_the_environment_never_to_argv() -> None:
    from spe.adapters.backup.database import _libpq

    uri, child_env = _libpq("postgresql+psycopg://spe:s3cr%40t@db.example:5433/spe"
                            "?sslmode=verify-full")
    assert "s3cr" not in uri
    assert uri == "postgresql://spe@db.example:5433/spe?sslmode=verify-full"
    assert child_env["PGPASSWORD"] == "s3cr@t"
