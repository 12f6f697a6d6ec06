"""TES 1.1 end to end on the embedded default: py-tes (the client researchers use) and raw
HTTP against a real `spe serve`, executors in real Charliecloud containers. Every response
is validated against the official TES 1.1 document (when the tests can find it)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import requests
import tes

from tests.helpers import Api, Server
from tests.tes.conftest import TES, as_user, import_image
from tests.wes_schema import assert_valid_tes

FINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}
RR = "/spe/v1/release-requests"


def client(server: Server, user: str = "alice") -> tes.HTTPClient:
    return tes.HTTPClient(server.url, token=as_user(server, user).token)


def task_body(*commands: list[str], **extra: Any) -> dict[str, Any]:
    return {"executors": [{"image": "alpine", "command": c} for c in commands], **extra}


def create(server: Server, body: dict[str, Any], user: str = "alice",
           headers: dict[str, str] | None = None) -> requests.Response:
    return as_user(server, user).post(f"{TES}/tasks", json=body, headers=headers)


def created(server: Server, body: dict[str, Any], user: str = "alice") -> str:
    resp = create(server, body, user)
    assert resp.status_code == 200, resp.text
    assert_valid_tes(resp)
    return str(resp.json()["id"])


def get(server: Server, task_id: str, view: str = "FULL", user: str = "alice"
        ) -> dict[str, Any]:
    resp = as_user(server, user).get(f"{TES}/tasks/{task_id}", params={"view": view})
    assert resp.status_code == 200, resp.text
    assert_valid_tes(resp)
    return dict(resp.json())


def wait(server: Server, task_id: str, user: str = "alice", timeout: float = 60,
         states: set[str] = FINAL) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = get(server, task_id, "MINIMAL", user)
        if body["state"] in states:
            return get(server, task_id, "FULL", user)
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} still {body.get('state')}")


def audit(server: Server, target: str) -> list[tuple[str, str]]:
    with sqlite3.connect(server.home / "spe.db") as db:
        return db.execute("SELECT action, outcome FROM audit_events WHERE target = ? "
                          "ORDER BY id", (target,)).fetchall()


def test_py_tes_runs_the_whole_lifecycle_with_a_bearer_token(tes_server: Server) -> None:
    cli = client(tes_server)
    info = cli.get_service_info()
    assert info.type["artifact"] == "tes" and "quarantine:///" in info.storage
    task = tes.Task(
        name="py-tes hello", tags={"study": "s1"},
        inputs=[tes.Input(path="/data/in.txt", content="hello from the input\n")],
        outputs=[tes.Output(path="/data/out.txt", url="quarantine:///results/out.txt")],
        executors=[tes.Executor(image="alpine", command=["sh", "-c",
                                                         "tr a-z A-Z < /data/in.txt > "
                                                         "/data/out.txt"])],
        resources=tes.Resources(cpu_cores=1, ram_gb=0.5))
    task_id = cli.create_task(task)
    done = cli.wait(task_id, timeout=60)
    assert done.state == "COMPLETE"
    full = cli.get_task(task_id, view="FULL")
    log = full.logs[0]
    assert [e.exit_code for e in log.logs] == [0]
    assert [(o.url, o.path, o.size_bytes) for o in log.outputs] == [
        ("quarantine:///results/out.txt", "/data/out.txt", 21)]
    assert full.inputs[0].content == "hello from the input\n"
    quarantined = tes_server.home / "quarantine/proj-a" / task_id / "results/out.txt"
    assert quarantined.read_text() == "HELLO FROM THE INPUT\n"
    listed = cli.list_tasks(view="BASIC", page_size=1)  # newest first
    assert [t.id for t in listed.tasks] == [task_id]
    assert listed.tasks[0].inputs[0].content is None  # BASIC leaves content out
    if listed.next_page_token:
        older = cli.list_tasks(page_size=1, page_token=listed.next_page_token)
        assert task_id not in [t.id for t in older.tasks]
    sleeper = cli.create_task(tes.Task(executors=[tes.Executor(
        image="alpine", command=["sleep", "300"])]))
    wait(tes_server, sleeper, states={"RUNNING"})
    cli.cancel_task(sleeper)  # CANCELING, then CANCELED once the job is gone
    assert wait(tes_server, sleeper)["state"] == "CANCELED"
    assert cli.get_task(sleeper).state == "CANCELED"
    assert ("task.cancel", "canceling") in audit(tes_server, sleeper)
    assert ("task.create", "accepted") in audit(tes_server, task_id)


def test_views_return_exactly_the_fields_of_the_spec(tes_server: Server) -> None:
    task_id = created(tes_server, task_body(
        ["sh", "-c", "echo out; echo err >&2"],
        inputs=[{"path": "/data/in.txt", "content": "x" * (128 * 1024)}],
        resources={"backend_parameters": {"Partition": "debug", "VmSize": "big"}}))
    wait(tes_server, task_id)
    minimal = get(tes_server, task_id, "MINIMAL")
    assert set(minimal) == {"id", "state"}
    basic = get(tes_server, task_id, "BASIC")
    assert "content" not in basic["inputs"][0]
    assert "system_logs" not in basic["logs"][0]
    assert all("stdout" not in e and "stderr" not in e for e in basic["logs"][0]["logs"])
    full = get(tes_server, task_id, "FULL")
    assert len(full["inputs"][0]["content"]) == 128 * 1024
    # an unsupported backend parameter is dropped with a note, never stored nor echoed
    assert full["resources"]["backend_parameters"] == {"partition": "debug"}
    assert "VmSize" not in json.dumps(full) and "big" not in json.dumps(full)
    assert any("unsupported backend parameter" in line
               for line in full["logs"][0]["system_logs"])
    # proj-a keeps logs in the enclave: the executor's streams are empty here
    assert full["logs"][0]["logs"][0]["stdout"] == ""
    assert isinstance(full["logs"][0]["logs"][0]["exit_code"], int)
    bad_view = as_user(tes_server, "alice").get(f"{TES}/tasks/{task_id}",
                                                params={"view": "EVERYTHING"})
    assert bad_view.status_code == 400


def test_stdout_is_returned_only_where_the_project_allows_direct_logs(
        tes_server: Server) -> None:
    task_id = created(tes_server, task_body(["sh", "-c", "echo visible; echo oops >&2"]),
                      user="bob")
    full = wait(tes_server, task_id, user="bob")
    assert full["state"] == "COMPLETE"
    assert full["logs"][0]["logs"][0]["stdout"] == "visible\n"
    assert full["logs"][0]["logs"][0]["stderr"] == "oops\n"
    assert ("task.read_logs", "granted") in audit(tes_server, task_id)


def test_executors_run_in_order_stop_at_the_first_failure_unless_ignore_error(
        tes_server: Server) -> None:
    out = [{"path": "/work/order.txt", "url": "quarantine:///order.txt"}]
    ignoring = created(tes_server, {"outputs": out, "executors": [
        {"image": "alpine", "command": ["sh", "-c", "echo 1 >> /work/order.txt; exit 3"],
         "ignore_error": True},
        {"image": "alpine", "command": ["sh", "-c", "echo 2 >> /work/order.txt"]}]})
    full = wait(tes_server, ignoring)
    assert full["state"] == "COMPLETE"
    assert [e["exit_code"] for e in full["logs"][0]["logs"]] == [3, 0]
    order = tes_server.home / "quarantine/proj-a" / ignoring / "order.txt"
    assert order.read_text() == "1\n2\n"
    stopping = created(tes_server, {"outputs": out, "executors": [
        {"image": "alpine", "command": ["sh", "-c", "echo 1 >> /work/order.txt; exit 3"]},
        {"image": "alpine", "command": ["sh", "-c", "echo 2 >> /work/order.txt"]}]})
    full = wait(tes_server, stopping)
    assert full["state"] == "EXECUTOR_ERROR"
    assert [e["exit_code"] for e in full["logs"][0]["logs"]] == [3]
    order = tes_server.home / "quarantine/proj-a" / stopping / "order.txt"
    assert order.read_text() == "1\n"


def test_volumes_workdir_env_stdin_and_wildcards(tes_server: Server) -> None:
    task_id = created(tes_server, {
        "volumes": ["/scratch/shared"],
        "inputs": [{"path": "/inputs/words.txt", "content": "b\na\n"}],
        "outputs": [{"path": "/outputs/*.txt", "path_prefix": "/outputs",
                     "url": "quarantine:///sorted"},
                    {"path": "/outputs/dir", "type": "DIRECTORY",
                     "url": "quarantine:///dir"}],
        "executors": [
            {"image": "alpine", "command": ["sh", "-c", "echo $GREETING > note; pwd > where"],
             "workdir": "/scratch/shared", "env": {"GREETING": "hi $HOME, a,b"}},
            {"image": "alpine", "command": ["sort"], "stdin": "/inputs/words.txt",
             "stdout": "/outputs/sorted.txt"},
            {"image": "busybox:1.36", "command": ["sh", "-c",
             "mkdir -p /outputs/dir/sub && cp /scratch/shared/note /scratch/shared/where "
             "/outputs/dir/sub/ && ln -s /etc/passwd /outputs/leak.txt"]}]})
    full = wait(tes_server, task_id)
    assert full["state"] == "COMPLETE", full
    q = tes_server.home / "quarantine/proj-a" / task_id
    assert (q / "sorted/sorted.txt").read_text() == "a\nb\n"
    assert (q / "dir/sub/note").read_text() == "hi $HOME, a,b\n"  # no expansion
    assert (q / "dir/sub/where").read_text() == "/scratch/shared\n"
    assert not (q / "sorted/leak.txt").exists()  # a symlink is never followed out
    paths = {o["path"] for o in full["logs"][0]["outputs"]}
    assert paths == {"/outputs/sorted.txt", "/outputs/dir/sub/note", "/outputs/dir/sub/where"}
    assert all(isinstance(o["size_bytes"], str) for o in full["logs"][0]["outputs"])


def test_the_image_root_is_read_only_and_the_environment_minimal(tes_server: Server) -> None:
    task_id = created(tes_server, {
        "outputs": [{"path": "/data/env.txt", "url": "quarantine:///env.txt"}],
        "executors": [{"image": "alpine", "command": ["sh", "-c",
                       "env | sort > /data/env.txt; touch /bin/x || echo RO >> /data/env.txt;"
                       " test -e /root/.ssh || echo NOHOME >> /data/env.txt"]}]})
    assert wait(tes_server, task_id)["state"] == "COMPLETE"
    text = (tes_server.home / "quarantine/proj-a" / task_id / "env.txt").read_text()
    names = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line}
    assert names <= {"HOME", "LANG", "PATH", "PWD", "SHLVL", "TMPDIR", "CH_RUNNING"}, names
    assert "RO" in text and "NOHOME" in text
    assert "SPE_" not in text and "TOKEN" not in text


def test_inputs_from_the_callers_datasets_and_refusals_at_create_time(
        tes_server: Server) -> None:
    task_id = created(tes_server, {
        "inputs": [{"path": "/data/counts.tsv", "url": "dataset://cohort-a/counts.tsv"},
                   {"path": "/data/tables", "url": "dataset://cohort-a/tables",
                    "type": "DIRECTORY"}],
        "outputs": [{"path": "/data/n.txt", "url": "quarantine:///n.txt"}],
        "executors": [{"image": "alpine", "command": [
            "sh", "-c", "cat /data/counts.tsv /data/tables/*.tsv | wc -l > /data/n.txt"]}]})
    assert wait(tes_server, task_id)["state"] == "COMPLETE"
    assert (tes_server.home / "quarantine/proj-a" / task_id / "n.txt").read_text().strip() \
        == "5"
    assert ("data.read", "staged") in audit(tes_server, "cohort-a")
    refusals = {
        "another project's dataset": ({"inputs": [
            {"path": "/data/x", "url": "dataset://cohort-b/counts.tsv"}]}, 403, "cohort-b"),
        "the web": ({"inputs": [{"path": "/data/x", "url": "https://example.org/x"}]}, 400,
                    "/inputs/0/url"),
        "an output outside the quarantine": ({"outputs": [
            {"path": "/data/x", "url": "s3://bucket/x"}]}, 400, "quarantine"),
        "an image not in the catalog": ({"executors": [
            {"image": "ubuntu:22.04", "command": ["true"]}]}, 403, "ubuntu:22.04"),
        "a path outside the mount points": ({"inputs": [
            {"path": "/etc/x", "content": "x"}]}, 400, "/inputs/0/path"),
        "strict backend parameters": ({"resources": {"backend_parameters": {"VmSize": "x"},
                                                     "backend_parameters_strict": True}},
                                      400, "backend_parameters_strict"),
        "a missing file": ({"inputs": [
            {"path": "/data/x", "url": "dataset://cohort-a/nope.tsv"}]}, 400, "inputs/0"),
        "no executors": ({"executors": []}, 400, "/executors"),
        "a fractional cpu_cores": ({"resources": {"cpu_cores": 1.5}}, 400, "cpu_cores"),
    }
    for name, (extra, status, says) in refusals.items():
        body = {**task_body(["true"]), **extra}
        resp = create(tes_server, body)
        assert resp.status_code == status, (name, resp.text)
        assert says in resp.json()["msg"], (name, resp.json())
        assert resp.json()["status_code"] == status


def test_a_drifted_image_is_refused_and_audited(tes_server: Server, busybox: Path,
                                                tmp_path: Path) -> None:
    copy = tmp_path / "drifting"
    shutil.copytree(busybox, copy, symlinks=True)
    (copy / "etc" / "motd").write_text("another image\n")  # its own bytes, its own folder
    digest = import_image(tes_server.home, copy, "drifting", "1")
    root = tes_server.home / "images" / digest.replace(":", "-")
    (root / "bin" / "extra").write_text("changed after review\n")
    resp = create(tes_server, {"executors": [{"image": "drifting:1", "command": ["true"]}]})
    assert resp.status_code == 403 and "drifting:1" in resp.json()["msg"], resp.text
    with sqlite3.connect(tes_server.home / "spe.db") as db:
        rows = db.execute("SELECT details FROM audit_events WHERE action = 'catalog.drift'"
                          ).fetchall()
    assert any("drifting:1" in r[0] for r in rows)


def test_task_output_leaves_only_through_the_airlock(tes_server: Server) -> None:
    task_id = created(tes_server, task_body(
        ["sh", "-c", "echo 'group,count' > /data/summary.csv; echo 'a,12' >> /data/summary.csv"],
        outputs=[{"path": "/data/summary.csv", "url": "quarantine:///summary.csv"}]))
    assert wait(tes_server, task_id)["state"] == "COMPLETE"
    alice = as_user(tes_server, "alice")
    early = alice.get(f"{RR}/none/download", params={"path": "summary.csv"})
    assert early.status_code in (403, 404)
    req = alice.post(RR, json={"run_id": task_id, "files": ["summary.csv"],
                               "justification": "Aggregate counts for the paper."})
    assert req.status_code == 201, req.text
    body = req.json()
    assert body["state"] == "IN_REVIEW", body
    for reviewer in ("rita", "rex"):
        vote = as_user(tes_server, reviewer).post(f"{RR}/{body['id']}/votes", json={
            "path": "summary.csv", "decision": "approve", "reason": "Aggregates only."})
        assert vote.status_code == 200, vote.text
    deadline = time.monotonic() + 30
    while alice.get(f"{RR}/{body['id']}").json()["state"] != "RELEASED":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    got = alice.get(f"{RR}/{body['id']}/download", params={"path": "summary.csv"})
    assert got.status_code == 200 and got.content == b"group,count\na,12\n"
    assert hashlib.sha256(got.content).hexdigest() in json.dumps(
        alice.get(f"{RR}/{body['id']}").json())


def test_listing_filters_and_paging(tes_server: Server) -> None:
    alice = as_user(tes_server, "alice")
    mine = [created(tes_server, task_body(["true"], name=f"batch-{i}",
                                          tags={"batch": "b7", "n": str(i % 2)}))
            for i in range(5)]

    def ids(**params: Any) -> list[str]:
        resp = alice.get(f"{TES}/tasks", params=params)
        assert resp.status_code == 200, resp.text
        assert_valid_tes(resp)
        return [t["id"] for t in resp.json()["tasks"]]

    assert ids(name_prefix="batch-") == mine[::-1]
    assert ids(tag_key="batch", tag_value="b7") == mine[::-1]
    assert ids(tag_key="batch", tag_value="") == mine[::-1]  # empty value: any value
    assert ids(tag_key=["batch", "n"], tag_value=["b7", "1"]) == [mine[3], mine[1]]
    assert ids(tag_key="batch", tag_value="other") == []
    assert ids(tag_key="n") == mine[::-1]  # a key alone matches any value
    # paging stays stable while tasks are created between pages
    first = alice.get(f"{TES}/tasks", params={"name_prefix": "batch-", "page_size": 2}).json()
    created(tes_server, task_body(["true"], name="batch-late"))
    seen = [t["id"] for t in first["tasks"]]
    token = first["next_page_token"]
    while token:
        page = alice.get(f"{TES}/tasks", params={"name_prefix": "batch-", "page_size": 2,
                                                 "page_token": token}).json()
        seen += [t["id"] for t in page["tasks"]]
        token = page.get("next_page_token", "")
    assert seen == mine[::-1]
    forged = alice.get(f"{TES}/tasks", params={"page_token": "x" * 40})
    assert forged.status_code == 400
    assert alice.get(f"{TES}/tasks", params={"page_size": 5000}).status_code == 400
    # tasks are not runs and runs are not tasks
    runs = alice.get("/ga4gh/wes/v1/runs").json()["runs"]
    assert not {r["run_id"] for r in runs} & set(mine)
    assert alice.get(f"/ga4gh/wes/v1/runs/{mine[0]}").status_code == 404
    assert as_user(tes_server, "bob").get(f"{TES}/tasks/{mine[0]}").status_code == 404


def test_a_retried_create_with_an_idempotency_key_makes_one_task(tes_server: Server) -> None:
    body = task_body(["true"], name="once")
    key = {"Idempotency-Key": "tes-retry-1"}
    first = create(tes_server, body, headers=key).json()["id"]
    assert create(tes_server, body, headers=key).json()["id"] == first
    other = create(tes_server, task_body(["false"]), headers=key)
    assert other.status_code == 409


def test_errors_are_ga4gh_error_responses(tes_server: Server) -> None:
    anon = requests.post(tes_server.url + f"{TES}/tasks", json=task_body(["true"]), timeout=10)
    assert anon.status_code == 401 and set(anon.json()) == {"msg", "status_code"}
    alice: Api = as_user(tes_server, "alice")
    for raw in (b"[]", b"{", b'"x"'):
        resp = alice.post(f"{TES}/tasks", data=raw,
                          headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, (raw, resp.text)
    assert alice.get(f"{TES}/tasks/nope").status_code == 404
    assert alice.post(f"{TES}/tasks/nope:cancel").status_code == 404


def test_a_finished_task_is_purged_as_a_run_is(tes_server: Server) -> None:
    task_id = created(tes_server, task_body(
        ["sh", "-c", "echo x > /data/x.txt"],
        outputs=[{"path": "/data/x.txt", "url": "quarantine:///x.txt"}]))
    assert wait(tes_server, task_id)["state"] == "COMPLETE"
    alice = as_user(tes_server, "alice")
    outputs = alice.get(f"/spe/v1/runs/{task_id}/outputs").json()["outputs"]
    assert [o["path"] for o in outputs] == ["x.txt"]
    purged = requests.delete(f"{tes_server.url}/spe/v1/runs/{task_id}", timeout=30,
                             headers={"Authorization": f"Bearer {alice.token}"})
    assert purged.status_code == 200, purged.text
    assert not (tes_server.home / "runs" / task_id).exists()
    assert not (tes_server.home / "quarantine/proj-a" / task_id).exists()
    assert get(tes_server, task_id, "BASIC")["state"] == "COMPLETE"  # metadata stays
