"""Test-only launcher: `spe worker` whose local executor blocks inside a start step, so a
test can SIGKILL the worker at a known point. Production code is not touched: the patch
lives in this process only.

Usage: python -m tests.celery.blocking_worker before-submit|after-submit worker [OPTIONS]

- before-submit: the work dir is prepared, nothing was submitted;
- after-submit: the engine runs and ``handle.json`` exists, but the handle is not yet
  recorded on the run.

Either way the worker writes ``blocked-<mode>`` (holding the handle it got, or null) into
the run's work dir, then waits until it is killed.
"""

from __future__ import annotations

import json
import sys
import threading

from spe.adapters.executors.local import LocalExecutor
from spe.cli.main import main as spe_main
from spe.domain.models import JSON
from spe.domain.ports import ExecutionSpec

MODES = ("before-submit", "after-submit")


def blocking_submit(mode: str) -> object:
    original = LocalExecutor.submit

    def submit(self: LocalExecutor, spec: ExecutionSpec) -> JSON:
        handle = original(self, spec) if mode == "after-submit" else None
        (spec.workdir / f"blocked-{mode}").write_text(json.dumps(handle))
        threading.Event().wait()  # until the test kills this process
        raise AssertionError("unreachable")

    return submit


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in MODES:
        raise SystemExit(f"usage: blocking_worker {'|'.join(MODES)} worker [OPTIONS]")
    LocalExecutor.submit = blocking_submit(argv[0])  # type: ignore[method-assign]
    spe_main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
