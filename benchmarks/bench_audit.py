"""The audit chain's append, on SQLite and PostgreSQL: the one-statement append of
``spe.adapters.db.audit_chain`` against the append it replaced (lock the head, read it,
insert the row: three statements), reproduced here as the baseline.

Each append is its own transaction (a submission adds its run's rows to it), one writer and
then 4 writer threads; the two ways take turns round by round so drift hits both alike.
Every chain written is verified afterwards.

Usage: .venv/bin/python benchmarks/bench_audit.py [--appends 2000] [--rounds 5]
       [--databases sqlite,postgres]"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from _common import CpuWatch, print_machine, print_table
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db import audit_chain
from spe.adapters.db.session import make_engine, make_sessions, upgrade
from spe.adapters.db.tables import AuditRow
from tests.postgres import start_postgres

LOCK_KEY = 0x5350_4541_5544_4954  # "SPEAUDIT": the advisory lock the earlier append took
LOCKS = {"postgresql": text(f"SELECT pg_advisory_xact_lock({LOCK_KEY})"),
         "sqlite": text("UPDATE audit_events SET id = id WHERE 1 = 0")}


def three_statements(session: Session, row: AuditRow) -> None:
    """The append before issue 15: lock, read the head, insert through the ORM."""
    session.execute(LOCKS[session.get_bind().dialect.name])
    head = session.execute(
        select(AuditRow.id, AuditRow.hash).order_by(AuditRow.id.desc()).limit(1)).first()
    row.id = head.id + 1 if head else 1
    row.prev_hash = head.hash if head else audit_chain.GENESIS
    row.hash = audit_chain.chain_hash(row.prev_hash, id=row.id, at=row.at, action=row.action,
                                      actor=row.actor, outcome=row.outcome,
                                      target=row.target, details=row.details)
    session.add(row)
    session.flush()


def one_statement(session: Session, row: AuditRow) -> None:
    audit_chain.append(session, row)


WAYS: dict[str, Callable[[Session, AuditRow], None]] = {
    "lock + head + insert (before)": three_statements,
    "one INSERT ... SELECT (now)": one_statement,
}


def new_row(n: int) -> AuditRow:
    return AuditRow(at=datetime.now(UTC), action="run.submit", actor="dev|bench",
                    outcome="accepted", target=f"run-{n:08d}",
                    details={"workflow": "tsv-summary@1.0.0", "project": "demo"})


def timed(sessions: sessionmaker[Session], way: Callable[[Session, AuditRow], None],
          appends: int, threads: int) -> float:
    """Appends per second, each in its own transaction."""
    def writer(share: range) -> None:
        for n in share:
            with sessions.begin() as s:
                way(s, new_row(n))

    shares = [range(t, appends, threads) for t in range(threads)]
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(writer, shares))
    return appends / (time.perf_counter() - start)


def measure(url: str, appends: int, rounds: int) -> list[list[object]]:
    upgrade(url)
    sessions = make_sessions(make_engine(url))
    rows: list[list[object]] = []
    for threads in (1, 4):
        rates: dict[str, list[float]] = {name: [] for name in WAYS}
        for _ in range(rounds):
            for name, way in WAYS.items():
                rates[name].append(timed(sessions, way, appends, threads))
        base = sorted(rates[next(iter(WAYS))])[rounds // 2]
        for name, values in rates.items():
            median = sorted(values)[rounds // 2]
            rows.append([sessions.kw["bind"].dialect.name, threads, name,
                         f"{median:.0f}", f"{min(values):.0f}-{max(values):.0f}",
                         f"{median / base:.2f}x"])
    problems = audit_chain.verify(sessions)
    if problems:
        raise SystemExit(f"the chain does not verify: {problems[:3]}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--databases", default="sqlite,postgres")
    args = parser.parse_args()
    print_machine("bench_audit: one audit append per transaction")
    watch = CpuWatch()
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        for database in args.databases.split(","):
            if database == "postgres":
                server = start_postgres(Path(tmp))
                stack.callback(server.stop)
                url = server.create_database()
            else:
                url = f"sqlite:///{Path(tmp) / 'audit.db'}"
            rows += measure(url, args.appends, args.rounds)
    print_table(["database", "writers", "append", "appends/s (median)", "range",
                 "vs before"], rows)
    print()
    print(watch.report())


if __name__ == "__main__":
    main()
