"""TES pieces without a server: the request parser, the views, the container runtimes'
command lines, resources, the image catalog and digest, output collection that never
follows a link out, and the task driver itself (real processes, no container)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from spe.api import tes_shapes
from spe.domain.errors import Forbidden, InvalidRequest
from spe.domain.images import ImageCatalog, ImageEntry
from spe.domain.models import TASK, OutputFile, Run, RunRequest, TaskLog
from spe.domain.resources import SiteLimits
from spe.domain.states import RunState
from spe.domain.tes import parse_task, path_problem, to_document
from spe.domain.tes_resources import backend_parameters, job_resources

HELLO = {"executors": [{"image": "alpine", "command": ["echo", "hi"]}]}


def problems(body: object) -> dict[str, str]:
    with pytest.raises(InvalidRequest) as err:
        parse_task(body)
    return dict(err.value.errors)


def test_a_task_reads_back_from_its_stored_document() -> None:
    body = {"name": "n", "tags": {"a": ""}, "volumes": ["/scratch/v"],
            "inputs": [{"path": "/data/in", "content": ""},
                       {"path": "/inputs/d", "url": "dataset://x/y", "type": "DIRECTORY"}],
            "outputs": [{"path": "/outputs/*.csv", "path_prefix": "/outputs",
                         "url": "quarantine:///csv"}],
            "resources": {"cpu_cores": 2, "ram_gb": 1.5, "zones": ["z"],
                          "backend_parameters": {"QOS": "short"}},
            "executors": [{"image": "alpine", "command": ["sh"], "env": {"A": "$B"},
                           "ignore_error": True, "workdir": "/work"}],
            "id": "ignored", "state": "COMPLETE", "logs": [], "creation_time": "x"}
    task = parse_task(body)
    assert parse_task(to_document(task)) == task
    assert task.resources is not None and task.resources.backend_parameters == {"qos": "short"}
    assert "id" not in to_document(task) and "state" not in to_document(task)


@pytest.mark.parametrize(("body", "pointer"), [
    ([], ""),
    ({}, "/executors"),
    ({"executors": [{"image": "a", "command": []}]}, "/executors/0/command"),
    ({"executors": [{"image": "a", "command": ["x", 1]}]}, "/executors/0/command"),
    ({**HELLO, "inputs": [{"path": "/data/x"}]}, "/inputs/0"),
    ({**HELLO, "inputs": [{"path": "relative", "content": "x"}]}, "/inputs/0/path"),
    ({**HELLO, "inputs": [{"path": "/data/../etc", "content": "x"}]}, "/inputs/0/path"),
    ({**HELLO, "inputs": [{"path": "/data/*", "content": "x"}]}, "/inputs/0/path"),
    ({**HELLO, "inputs": [{"path": "/data/x", "content": "x" * (256 * 1024 + 1)}]},
     "/inputs/0/content"),
    ({**HELLO, "outputs": [{"path": "/data/x", "url": "file:///etc/x"}]}, "/outputs/0/url"),
    ({**HELLO, "outputs": [{"path": "/data/x", "url": "quarantine:///../x"}]},
     "/outputs/0/url"),
    ({**HELLO, "outputs": [{"path": "/data/*.txt", "url": "quarantine:///t"}]},
     "/outputs/0/path_prefix"),
    ({**HELLO, "outputs": [{"path": "/data/x", "url": "quarantine:///_logs/stdout.txt"}]},
     "/outputs/0/url"),
    ({**HELLO, "resources": {"cpu_cores": 1.5}}, "/resources/cpu_cores"),
    ({**HELLO, "resources": {"ram_gb": -1}}, "/resources/ram_gb"),
    ({**HELLO, "resources": {"preemptible": "yes"}}, "/resources/preemptible"),
    ({**HELLO, "tags": {"k": 1}}, "/tags"),
    ({"executors": [{"image": "a", "command": ["x"], "env": {"1A": "x"}}]},
     "/executors/0/env/1A"),
    ({"executors": [{"image": "a", "command": ["x"], "stdout": "/proc/self"}]},
     "/executors/0/stdout"),
])
def test_every_problem_of_a_task_is_named_by_its_pointer(body: object, pointer: str) -> None:
    assert pointer in problems(body)


def test_the_logs_folder_of_the_quarantine_is_reserved() -> None:
    from spe.domain.jobdir import LOG_PREFIX
    from spe.domain.tes import LOGS

    assert LOG_PREFIX == LOGS + "/"


def test_container_paths_stay_below_the_mount_points() -> None:
    assert path_problem("/data/a/b.txt") == ""
    assert path_problem("/tmp") == ""
    assert path_problem("/data") != ""  # a mount point itself is not a file
    for bad in ("/etc/passwd", "/", "data/x", "/data//x", "/data/./x", "/data/x\n"):
        assert path_problem(bad) != "", bad


def test_backend_parameters_are_a_closed_list() -> None:
    res = parse_task({**HELLO, "resources": {"backend_parameters": {
        "Partition": "debug", "time": "1-00:00:30", "VmSize": "x"}}}).resources
    kept, note = backend_parameters(res)
    assert kept == {"partition": "debug", "time": "1-00:00:30"} and "1 unsupported" in note
    assert "VmSize" not in note
    limits = SiteLimits(cpus=4, memory_mb=2048, time_minutes=600)
    assert job_resources(res, kept, limits)["time_minutes"] == 600  # 1441 clamped
    strict = parse_task({**HELLO, "resources": {"backend_parameters": {"VmSize": "x"},
                                                "backend_parameters_strict": True}})
    with pytest.raises(InvalidRequest, match="strict"):
        backend_parameters(strict.resources)
    with pytest.raises(InvalidRequest):
        backend_parameters(parse_task({**HELLO, "resources": {
            "backend_parameters": {"partition": "a b"}}}).resources)
    big = parse_task({**HELLO, "resources": {"cpu_cores": 64, "ram_gb": 100, "disk_gb": 2}})
    assert job_resources(big.resources, {}, limits) == {
        "cpus": 4, "memory_mb": 2048, "time_minutes": 60, "disk_mb": 2048}


def test_images_resolve_by_name_alias_or_digest_and_nothing_else() -> None:
    entry = ImageEntry("busybox", "1.36", "sha256:" + "a" * 64, "f", ("alpine:latest",))
    catalog = ImageCatalog([entry])
    for name in ("busybox:1.36", "alpine", "alpine:latest", f"busybox@{entry.digest}"):
        assert catalog.resolve(name) == entry
    for name in ("busybox", "alpine:3.19", "busybox@sha256:" + "b" * 64, "docker.io/x"):
        with pytest.raises(Forbidden, match="image catalog"):
            catalog.resolve(name)


def a_task(**kw: object) -> Run:
    body = {"name": "t", "inputs": [{"path": "/data/in", "content": "secret"}],
            "outputs": [{"path": "/data/out", "url": "quarantine:///out"},
                        {"path": "/data/d", "url": "quarantine:///dir", "type": "DIRECTORY"}],
            "executors": [{"image": "alpine", "command": ["true"]}]}
    at = datetime(2026, 1, 1, tzinfo=UTC)
    defaults: dict[str, object] = dict(  # noqa: C408 - the Run's own field names
        id="t1", owner_sub="s", owner_name="u", state=RunState.COMPLETE,
        request=RunRequest("", "TES", "1.1"), workflow_id="tes", workflow_version="1.1",
        bundle_digest="d", engine="tes", engine_options={}, created_at=at, kind=TASK,
        task=to_document(parse_task(body)), start_time=at, end_time=at,
        handle={"executor": "slurm", "job_id": "42"}, system_logs=["note"],
        outputs=[OutputFile("out", 3, "x"), OutputFile("dir/a/b.txt", 1, "y")])
    defaults.update(kw)
    return Run(**defaults)  # type: ignore[arg-type]


def test_views_hold_exactly_the_spec_fields() -> None:
    task = a_task()
    logs = [TaskLog("0", "executor 0", exit_code=0), TaskLog("1", "executor 1")]
    assert tes_shapes.task(task, "MINIMAL") == {"id": "t1", "state": "COMPLETE"}
    basic = tes_shapes.task(task, "BASIC", logs)
    assert "content" not in basic["inputs"][0] and "system_logs" not in basic["logs"][0]
    assert basic["logs"][0]["metadata"] == {"executor": "slurm", "job_id": "42"}
    assert len(basic["logs"][0]["logs"]) == 1  # a running executor has no exit code yet
    full = tes_shapes.task(task, "FULL", logs, [("o", "e")])
    assert full["inputs"][0]["content"] == "secret"
    assert full["logs"][0]["system_logs"] == ["note"]
    assert full["logs"][0]["logs"][0] | {} == {"exit_code": 0, "stdout": "o", "stderr": "e"}
    assert full["logs"][0]["outputs"] == [
        {"url": "quarantine:///out", "path": "/data/out", "size_bytes": "3"},
        {"url": "quarantine:///dir/a/b.txt", "path": "/data/d/a/b.txt", "size_bytes": "1"}]
    json.dumps(full)
    queued = tes_shapes.task(a_task(state=RunState.QUEUED, handle=None, start_time=None,
                                    end_time=None, outputs=[]), "BASIC")
    assert "logs" not in queued


def test_tes_service_info_leaves_a_mailto_contact_out() -> None:
    from spe.services.service_info import TesServiceInfo

    at = datetime(2026, 1, 1, tzinfo=UTC)
    mailto = TesServiceInfo("n", "o", "https://o.example", at, ("partition",),
                            "mailto:help@example.org", "https://docs.example", "prod")
    body = mailto.describe()
    assert "contactUrl" not in body and body["environment"] == "prod"
    assert body["type"] == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}
    web = TesServiceInfo("n", "o", "https://o.example", at, (), "https://help.example")
    assert web.describe()["contactUrl"] == "https://help.example"
