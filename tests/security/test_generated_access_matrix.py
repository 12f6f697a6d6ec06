"""The access matrix, generated from the OpenAPI documents: every operation of
``spe/openapi/*.yaml`` is called by every kind of caller on a run and a release request of
project A, and each answer must be what the permission table (``spe/domain/permissions.py``)
says. An operation without a rule here fails the test, so a new endpoint cannot ship
without one.

Expected answers: anonymous callers get 401 (public operations excepted); a caller the
table allows (``PERMISSIONS``, less what ``WITHHELD`` takes from a non-owner) passes
authorisation (2xx, or 409 where the resource's state forbids the
action: cancelling a finished run, downloading an unreleased request); a caller who may
read the resource but not do this gets 403; anyone else gets 404, as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from spe.domain.permissions import PERMISSIONS, WITHHELD, Relation
from tests.helpers import ROOT, Api, Server
from tests.tes.conftest import busybox_root, import_image

R = Relation
POLICY = ROOT / "tests/fixtures/policy/matrix.yaml"
PASSED = frozenset({200, 201, 204, 409})
FILES = ["results/done.txt", "results/first.txt"]


@dataclass(frozen=True)
class Caller:
    user: str
    groups: tuple[str, ...]
    relations: frozenset[Relation]  # to a run (and release request) of alice in proj-a
    global_operator: bool = False  # for operations on no resource (the audit log)

    def relations_to(self, resource: str | None) -> frozenset[Relation]:
        if resource is not None:
            return self.relations
        return frozenset({R.ANYONE, R.OPERATOR} if self.global_operator else {R.ANYONE})


CALLERS = {
    "owner": Caller("alice", ("spe:proj-a",),
                    frozenset({R.ANYONE, R.OWNER, R.PROJECT_SHARED, R.PROJECT_RESEARCHER})),
    "member": Caller("amy", ("spe:proj-a",),
                     frozenset({R.ANYONE, R.PROJECT_SHARED, R.PROJECT_RESEARCHER})),
    "other-project": Caller("bob", ("spe:proj-b",), frozenset({R.ANYONE})),
    # alice again, no longer in proj-a: ownership alone grants nothing
    "ex-member": Caller("alice", ("spe:proj-b",), frozenset({R.ANYONE})),
    "reviewer": Caller("rita", ("spe:proj-a", "spe:proj-a:role=reviewer"),
                       frozenset({R.ANYONE, R.PROJECT_SHARED, R.PROJECT_RESEARCHER,
                                  R.PROJECT_REVIEWER})),
    # a role in a project's group implies membership of it (AARC-G002)
    "project-operator": Caller("pete", ("spe:proj-a:role=operator",),
                               frozenset({R.ANYONE, R.PROJECT_SHARED, R.PROJECT_RESEARCHER,
                                          R.OPERATOR})),
    "global-operator": Caller("olga", ("spe:operators",), frozenset({R.ANYONE, R.OPERATOR}),
                              global_operator=True),
}

# operationId -> (permission, the permission that makes the resource visible, or None
# for operations on no resource). "public": no token needed.
RULES: dict[str, tuple[str, str | None]] = {
    "GetServiceInfo": ("public", None),
    "get_auth_instructions": ("public", None),
    "ListRuns": ("run.list", None),
    "RunWorkflow": ("run.submit", None),
    "GetRunLog": ("run.read", "run.read"),
    "GetRunStatus": ("run.read", "run.read"),
    "ListTasks": ("run.read", "run.read"),
    "GetTask": ("run.read", "run.read"),
    "CancelRun": ("run.cancel", "run.read"),
    "get_me": ("me.read", None),
    "list_workflows": ("catalog.list", None),
    "get_workflow": ("catalog.list", None),
    "get_run_log_stream": ("run.read_logs", "run.read"),
    "list_run_outputs": ("run.read", "run.read"),
    "get_run_progress": ("run.read", "run.read"),
    "purge_run": ("run.purge", "run.read"),
    "list_datasets": ("dataset.list", None),
    "list_release_requests": ("run.list", None),  # filtered to what release.read allows
    "create_release_request": ("release.request", "run.read"),
    "get_release_request": ("release.read", "release.read"),
    "vote_on_release_request": ("release.review", "release.read"),
    "resubmit_release_request": ("release.request", "release.read"),
    "withdraw_release_request": ("release.request", "release.read"),
    "revoke_release_request": ("release.revoke", "release.read"),
    "preview_release_file": ("release.preview", "release.read"),
    "download_released_file": ("release.download", "release.read"),
    "get_release_crate": ("release.read", "release.read"),
    "get_release_context": ("release.review", "release.read"),
    "list_audit_events": ("audit.read", None),
    # TES (its operationIds are prefixed: ListTasks and GetTask are WES's too); a task is
    # read, canceled and listed as a run is
    "tes.GetServiceInfo": ("public", None),
    "tes.CreateTask": ("run.submit", None),
    "tes.ListTasks": ("run.list", None),
    "tes.GetTask": ("run.read", "run.read"),
    "tes.CancelTask": ("run.cancel", "run.read"),
}
DOCUMENTS = (("wes.yaml", ""), ("spe.yaml", ""), ("tes.yaml", "tes."))
TES_TASK = {"executors": [{"image": "alpine", "command": ["true"]}],
            "tags": {"project": "proj-a"}}


@dataclass(frozen=True)
class Operation:
    op_id: str
    method: str
    path: str  # with {placeholders}


def operations() -> list[Operation]:
    found = []
    for name, prefix in DOCUMENTS:
        doc = yaml.safe_load((ROOT / "spe" / "openapi" / name).read_text())
        base = doc["servers"][0]["url"]
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method in ("get", "post", "put", "patch", "delete"):
                    found.append(Operation(prefix + op["operationId"], method.upper(),
                                           base + path))
    return found


OPERATIONS = operations()


def test_every_operation_has_a_rule() -> None:
    ids = {op.op_id for op in OPERATIONS}
    assert ids - set(RULES) == set(), "operations without a rule in the access matrix"
    assert set(RULES) - ids == set(), "rules for operations that no longer exist"
    for perm, visible in RULES.values():
        assert perm == "public" or perm in PERMISSIONS, perm
        assert visible is None or visible in PERMISSIONS, visible


def expected(caller: Caller | None, op: Operation) -> frozenset[int]:
    perm, visible = RULES[op.op_id]
    if perm == "public":
        return PASSED
    if caller is None:
        return frozenset({401})
    if op.op_id in ("RunWorkflow", "tes.CreateTask"):  # in proj-a: the project is the resource
        return PASSED if R.PROJECT_RESEARCHER in caller.relations else frozenset({403})
    relations = caller.relations_to(visible)
    withheld = WITHHELD.get(perm, frozenset()) & relations and R.OWNER not in relations
    if PERMISSIONS[perm] & relations and not withheld:
        return PASSED
    if visible is None or PERMISSIONS[visible] & relations:
        return frozenset({403})
    return frozenset({404})


@dataclass
class World:
    srv: Server
    run_id: str
    doomed_run_id: str  # purged by whoever may
    task_id: str
    request_id: str
    tes_task_id: str  # a TES task of alice in proj-a


def _api(srv: Server, caller: Caller | None) -> Api:
    return Api(srv.url, srv.token(caller.user, groups=caller.groups) if caller else "")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[World]:
    home = tmp_path_factory.mktemp("generated-matrix")
    import_image(home, busybox_root(tmp_path_factory.mktemp("image") / "busybox"),
                 "busybox", "1.36", "alpine")
    srv = Server(home=home, catalog=catalog_dir,
                 env_extra={"SPE_POLICY_FILE": str(POLICY)}).start()
    try:
        alice = _api(srv, CALLERS["owner"])
        run_id, doomed = (alice.run_id(alice.submit("sleepy", {"seconds": 0}))
                          for _ in range(2))
        assert alice.wait(run_id) == alice.wait(doomed) == "COMPLETE"
        task_id = alice.get(f"/ga4gh/wes/v1/runs/{run_id}/tasks").json()["task_logs"][0]["id"]
        made = alice.post("/spe/v1/release-requests", json={
            "run_id": run_id, "files": FILES, "justification": "Aggregates only."})
        assert made.status_code == 201, made.text
        tes_task = alice.post("/ga4gh/tes/v1/tasks", json=TES_TASK)
        assert tes_task.status_code == 200, tes_task.text
        yield World(srv, run_id, doomed, task_id, made.json()["id"], tes_task.json()["id"])
    finally:
        srv.stop()


def _call(api: Api, op: Operation, world: World) -> requests.Response:
    run_id = world.doomed_run_id if op.op_id == "purge_run" else world.run_id
    path = op.path.format(run_id=run_id, task_id=world.task_id, stream="stderr",
                          request_id=world.request_id, workflow_ref="sleepy@1.0.0",
                          id=world.tes_task_id)
    kw: dict[str, Any] = {"params": {"path": FILES[0]}} if "file" in op.op_id else {}
    if op.op_id == "RunWorkflow":
        return api.submit("sleepy", {"seconds": 0}, tags={"project": "proj-a"})
    if op.op_id == "tes.CreateTask":
        kw["json"] = TES_TASK
    if op.op_id == "create_release_request":
        kw["json"] = {"run_id": run_id, "files": FILES[:1], "justification": "Aggregates."}
    elif op.op_id == "vote_on_release_request":
        kw["json"] = {"path": FILES[0], "decision": "request_changes", "reason": "Check."}
    headers = {"Authorization": f"Bearer {api.token}"} if api.token else {}
    return requests.request(op.method, api.base + path, headers=headers, timeout=60, **kw)


CASES = [(name, op) for op in OPERATIONS if op.op_id != "purge_run"
         for name in (*CALLERS, "anonymous")] + \
        [(name, op) for op in OPERATIONS if op.op_id == "purge_run"  # last: it destroys
         for name in (*CALLERS, "anonymous")]


@pytest.mark.parametrize(("who", "op"), CASES, ids=[f"{o.op_id}-{w}" for w, o in CASES])
def test_each_caller_gets_what_the_permission_table_says(world: World, who: str,
                                                          op: Operation) -> None:
    caller = CALLERS.get(who)
    resp = _call(_api(world.srv, caller), op, world)
    assert resp.status_code in expected(caller, op), (who, op.op_id, resp.status_code,
                                                     resp.text[:300])
