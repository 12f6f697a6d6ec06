"""In-memory fakes of the ports, including fakes that fail the way real backends do.

``FakeExecutor`` simulates processes by the clock instead of starting them. Its state lives
in a registry (the fake "machine") keyed by handle id, so a new instance given the same
registry re-attaches to earlier handles, as a restarted server would."""

from __future__ import annotations

import errno
import json
import shlex
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from spe.adapters.engines.common import declared_outputs
from spe.domain.catalog import WorkflowEntry
from spe.domain.models import JSON, TaskLog
from spe.domain.ports import LOCAL, EngineTarget, ExecutionSpec, ExecutionStatus
from spe.domain.states import RunState


@dataclass
class FakeProcess:
    """What the fake machine remembers of one submission."""

    argv: tuple[str, ...]
    started: float
    duration: float
    exit_code: int
    canceled_at: float | None = None
    key: str = ""

    def ended(self, now: float) -> bool:
        return now >= self.started + self.duration


@dataclass
class Simulation:
    duration: float = 0.0
    exit_code: int = 0
    stdout: tuple[str, ...] = ()
    stderr: tuple[str, ...] = ()


def simulate(argv: tuple[str, ...]) -> Simulation:
    """What ``argv`` would do, for the subset the fake knows: ``true``, ``false``,
    ``sleep N``, and ``sh -c`` scripts of ``;``-separated echo / sleep / true / false /
    exit N. Any other program "is not found" and exits 127, as under the local runner."""
    sim = Simulation()
    script = len(argv) == 3 and argv[:2] == ("sh", "-c")
    commands = [shlex.split(part) for part in argv[2].split(";")] if script else [list(argv)]
    for words in commands:
        sim.exit_code = 0
        match words:
            case ["exit", code]:
                sim.exit_code = int(code)
                return sim
            case ["echo", *text, ">&2"]:
                sim.stderr += (" ".join(text),)
            case ["echo", *text]:
                sim.stdout += (" ".join(text),)
            case ["sleep", seconds]:
                sim.duration += float(seconds)
            case ["false"]:
                sim.exit_code = 1
            case ["true"] | []:
                pass
            case [program, *_]:
                sim.stderr += (f"fake: cannot start {program}: not found",)
                sim.exit_code = 127
    return sim


def _append(path: Path, lines: Iterable[str]) -> None:
    with path.open("a", encoding="utf-8") as stream:
        stream.writelines(f"{line}\n" for line in lines)


class FakeExecutor:
    """The Executor port in memory; see ``simulate`` for what it can run."""

    name = "fake"

    def __init__(self, registry: dict[str, FakeProcess] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry: dict[str, FakeProcess] = {} if registry is None else registry
        self._clock = clock

    def submit(self, spec: ExecutionSpec) -> JSON:
        sim = simulate(spec.argv)
        spec.workdir.mkdir(parents=True, exist_ok=True)
        _append(spec.stdout, sim.stdout)
        _append(spec.stderr, sim.stderr)
        key = uuid.uuid4().hex
        self.registry[key] = FakeProcess(spec.argv, self._clock(), sim.duration, sim.exit_code)
        self.registry[f"run:{spec.run_id}"] = self.registry[key]
        self.registry[key].key = key
        return {"executor": self.name, "id": key}

    def find(self, run_id: str, workdir: Path) -> JSON | None:
        proc = self.registry.get(f"run:{run_id}")
        return {"executor": self.name, "id": proc.key} if proc is not None else None

    def poll(self, handle: JSON) -> ExecutionStatus:
        proc = self.registry.get(str(handle.get("id")))
        if proc is None:
            return ExecutionStatus(RunState.SYSTEM_ERROR, None,
                                   "the fake process vanished without an exit status")
        if proc.canceled_at is not None:
            return ExecutionStatus(RunState.CANCELED, None, "canceled on request")
        if not proc.ended(self._clock()):
            return ExecutionStatus(RunState.RUNNING)
        if proc.exit_code == 0:
            return ExecutionStatus(RunState.COMPLETE, 0)
        return ExecutionStatus(RunState.EXECUTOR_ERROR, proc.exit_code,
                               f"the job exited with {proc.exit_code}")

    def cancel(self, handle: JSON) -> None:
        proc = self.registry.get(str(handle.get("id")))
        now = self._clock()
        if proc is not None and proc.canceled_at is None and not proc.ended(now):
            proc.canceled_at = now


class NeverStartsExecutor(FakeExecutor):
    """Fails on submit the way a fork does when the machine is out of processes."""

    def submit(self, spec: ExecutionSpec) -> JSON:
        raise OSError(errno.EAGAIN, f"fake: cannot start {spec.argv[0]}: "
                                    "resource temporarily unavailable")


class VanishingExecutor(FakeExecutor):
    """Starts the work, which then disappears without leaving an exit status (the node
    rebooted, the OOM killer took the wrapper): every poll reports SYSTEM_ERROR."""

    def submit(self, spec: ExecutionSpec) -> JSON:
        handle = super().submit(spec)
        del self.registry[handle["id"]]
        return handle


class SleepEngine:
    """A stand-in engine whose 'workflow' is a long sleep (the fake executor runs it)."""

    name = "snakemake"
    workflow_type = "SMK"
    supported_options = frozenset({"cores", "keep_going", "latency_wait"})

    def version(self) -> str:
        return "9.0.0"

    def argv(self, entry: WorkflowEntry, bundle_dir: Path, params_file: Path,
             workdir: Path, options: JSON, *, target: EngineTarget = LOCAL) -> list[str]:
        return ["sleep", "3600"]

    def task_logs(self, workdir: Path) -> list[TaskLog]:
        return []

    def output_dir(self, workdir: Path) -> Path:
        return workdir / "work"

    def outputs(self, entry: WorkflowEntry, workdir: Path) -> list[Path]:
        return declared_outputs(entry, self.output_dir(workdir))



class ResultsEngine(SleepEngine):
    """A stand-in engine for the fake executor that honours the ``sleepy`` test workflow's
    params (``seconds``: how long the fake process runs; ``fail``: it exits 1) and, as a
    real run would, leaves ``results/first.txt`` and ``results/done.txt`` behind (written
    when the engine is asked for its command; ``done.txt`` holds the params). Outputs are
    the entry's declared globs, as for the real engines."""

    def argv(self, entry: WorkflowEntry, bundle_dir: Path, params_file: Path,
             workdir: Path, options: JSON, *, target: EngineTarget = LOCAL) -> list[str]:
        params = json.loads(params_file.read_text())
        results = self.output_dir(workdir) / "results"
        results.mkdir(parents=True, exist_ok=True)
        (results / "first.txt").write_text("first\n")
        (results / "done.txt").write_text(json.dumps(params, sort_keys=True) + "\n")
        if params.get("fail"):
            return ["false"]
        return ["sleep", str(params.get("seconds", 0))]

    def outputs(self, entry: WorkflowEntry, workdir: Path) -> list[Path]:
        return declared_outputs(entry, self.output_dir(workdir))
