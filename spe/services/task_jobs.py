"""The execution side of a TES task (a job of kind ``task``): what the execution service
does differently from a workflow run.

- ``prepare``: check every image again (still in the catalog, its root still hashing to
  the digest pinned at creation; else a ``catalog.drift`` event and the task ends in
  SYSTEM_ERROR without starting), stage the inputs into the task's container tree (content
  written, dataset files copied read-only, one ``data.read`` event per dataset), and hand
  the driver a plan: each executor's container runtime argv with the task's mount points
  bound. The job's argv runs the driver.
- ``task_logs``: one task log per executor the driver ran (times, exit code).
- ``outputs``: the declared outputs found in the container tree, copied into the task's
  quarantine under the names their ``quarantine:///`` URLs give, and the executors'
  streams beside them under ``_logs/`` (output too)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from spe.domain.data_refs import DataRef, parse_refs
from spe.domain.errors import Forbidden
from spe.domain.images import ImageEntry
from spe.domain.jobdir import LOG_STREAMS, JobDir, quarantined_executor_log
from spe.domain.models import AuditEvent, OutputFile, Principal, Run, TaskLog
from spe.domain.policy import Dataset
from spe.domain.ports import (
    AuditLog,
    ExecutionSpec,
    ExecutorChoice,
)
from spe.domain.task_ports import ContainerRuntime, Images, TaskDriver
from spe.domain.tes import TaskInput, TaskOutput, TaskRequest, mount_point, parse_task
from spe.domain.tes_resources import backend_parameters, job_resources
from spe.services.data import DataService

CONTAINER_TMP = "/tmp"  # noqa: S108 - the task's own tmp mount point, not the host's
CONTAINER_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "HOME": CONTAINER_TMP, "TMPDIR": CONTAINER_TMP, "LANG": "C.UTF-8"}
DEFAULT_WORKDIR = CONTAINER_TMP


class ImageDrift(Forbidden):
    """An image's root no longer hashes to its pinned digest (the service's own words)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, rule="image")


INPUTS_SCHEMA = {"type": "object", "properties": {"inputs": {"type": "array", "items": {
    "type": "object", "properties": {"url": {"type": "string", "x-spe-input": True}}}}}}


def input_refs(task: TaskRequest, datasets: dict[str, Dataset]) -> list[DataRef]:
    """The data references of a task's ``url`` inputs, read as a workflow's params are
    (pointers ``/inputs/<i>/url``); 400 for one that is not inside a registered dataset."""
    inputs = [{} if inp.content is not None else {"url": inp.url} for inp in task.inputs]
    return parse_refs(INPUTS_SCHEMA, {"inputs": inputs}, datasets, what="the task's inputs")


def directory_pointers(task: TaskRequest) -> frozenset[str]:
    return frozenset(f"/inputs/{i}/url" for i, inp in enumerate(task.inputs)
                     if inp.type == "DIRECTORY")


def mount_points(task: TaskRequest) -> list[str]:
    """The mount points a task's paths use, and ``tmp`` always (HOME and TMPDIR)."""
    paths = [*(i.path for i in task.inputs), *(o.path for o in task.outputs),
             *task.volumes]
    for ex in task.executors:
        paths += [p for p in (ex.workdir, ex.stdin, ex.stdout, ex.stderr) if p]
    return sorted({mount_point(p) for p in paths} | {"tmp"})


@dataclass
class TaskJobs:
    images: Images
    runtime: ContainerRuntime
    driver: TaskDriver
    data: DataService
    audit: AuditLog

    def check_images(self, task: TaskRequest, who: str, target: str) -> dict[str, str]:
        """Each executor's image: in the catalog (403 naming it) and its root hashing to
        the pinned digest (403 and a ``catalog.drift`` event otherwise). Returns image
        name -> digest."""
        catalog = self.images.catalog()
        pinned: dict[str, str] = {}
        for ex in task.executors:
            if ex.image in pinned:
                continue
            entry = catalog.resolve(ex.image)
            self._verify(entry, who, target)
            pinned[ex.image] = entry.digest
        return pinned

    def _verify(self, entry: ImageEntry, who: str, target: str) -> None:
        found = self.images.digest(entry)
        if found == entry.digest:
            return
        self.audit.append(AuditEvent(
            action="catalog.drift", actor=who, outcome="refused", target=target,
            details={"image": entry.ref, "approved": entry.digest, "found": found}))
        raise ImageDrift(f"image {entry.ref} changed on disk since it was approved (its "
                         f"root hashes to {found}, the catalog pins {entry.digest})")

    def prepare(self, run: Run, job: JobDir, choice: ExecutorChoice) -> ExecutionSpec:
        task = parse_task(run.task)
        pinned = run.engine_options.get("images") or {}
        if self.check_images(task, "system", run.id) != pinned:
            raise ImageDrift("an image of the task now names other bytes than when the "
                             "task was created; the task was not started")
        folders = [*task.volumes, *(ex.workdir for ex in task.executors if ex.workdir)]
        binds = self.driver.mounts(job, mount_points(task), folders)
        self._stage(run, task, job)
        catalog = self.images.catalog()
        steps = []
        for ex in task.executors:
            launch = self.runtime.launch(self.images.root(catalog.resolve(ex.image)), binds,
                                         ex.workdir or DEFAULT_WORKDIR,
                                         {**CONTAINER_ENV, **ex.env}, ex.command)
            steps.append({"argv": list(launch.argv), "env": launch.env,
                          "stdin": self._host(job, ex.stdin),
                          "stdout": self._host(job, ex.stdout),
                          "stderr": self._host(job, ex.stderr),
                          "ignore_error": ex.ignore_error})
        argv = self.driver.install(job, {"executors": steps})
        params, _ = backend_parameters(task.resources)
        account = choice.job_account(run)
        return ExecutionSpec(run_id=run.id, argv=argv, workdir=job.root, stdout=job.stdout,
                             stderr=job.stderr, account=account,
                             resources=job_resources(task.resources, params, choice.limits),
                             scheduler={k: v for k, v in params.items() if k != "time"})

    def _host(self, job: JobDir, path: str) -> str:
        return str(self.driver.host(job, path)) if path else ""

    def _stage(self, run: Run, task: TaskRequest, job: JobDir) -> None:
        for inp in task.inputs:
            if inp.content is not None:
                self.driver.write(job, inp.path, inp.content.encode())
        refs = input_refs(task, self.data.gate.policy.datasets)
        by_pointer: dict[str, TaskInput] = {
            f"/inputs/{i}/url": inp for i, inp in enumerate(task.inputs)}
        items = [(ref, self.driver.host(job, by_pointer[ref.pointer].path),
                  by_pointer[ref.pointer].type == "DIRECTORY") for ref in refs]
        self.data.stage_copies(items)
        for dataset, count in sorted(Counter(r.dataset for r in refs).items()):
            self.audit.append(AuditEvent(
                action="data.read", actor=run.owner_sub, outcome="staged", target=dataset,
                details={"task": run.id, "project": run.project, "inputs": count}))

    def authorize_inputs(self, who: Principal, task: TaskRequest, project: str) -> None:
        refs = input_refs(task, self.data.gate.policy.datasets)
        self.data.check_refs(who, refs, project, "tes-task", directory_pointers(task))

    def task_logs(self, run: Run, job: JobDir) -> list[TaskLog]:
        task = parse_task(run.task)
        logs = []
        for record in self.driver.records(job):
            if record.index >= len(task.executors):
                break
            ex = task.executors[record.index]
            logs.append(TaskLog(id=str(record.index), name=f"executor {record.index}",
                                cmd=ex.command, start_time=record.start_time,
                                end_time=record.end_time, exit_code=record.exit_code))
        return logs

    def outputs(self, run: Run, job: JobDir) -> list[OutputFile]:
        task = parse_task(run.task)
        streams = [(job.executor_stream(r.index, s), quarantined_executor_log(r.index, s))
                   for r in self.driver.records(job) for s in LOG_STREAMS]
        self.data.quarantine_files(run.project, run.id, streams, missing_ok=True)
        pairs: dict[str, Path] = {}
        for out in task.outputs:
            found = self.driver.collect(job, out.path, out.type == "DIRECTORY", out.wildcard)
            for item in found:
                pairs.setdefault(_name(out, item.path), item.host)
        return self.data.quarantine_files(run.project, run.id,
                                          [(host, name) for name, host in pairs.items()])


def _name(out: TaskOutput, found: str) -> str:
    """Where a found file goes in the quarantine: the output's key, below it for a folder
    (the path inside it) or a wildcard (the path without ``path_prefix``)."""
    if out.wildcard:
        return f"{out.key}/{found[len(out.path_prefix):].lstrip('/')}".lstrip("/")
    if out.type == "DIRECTORY":
        return f"{out.key}/{found[len(out.path):].lstrip('/')}".lstrip("/")
    return out.key
