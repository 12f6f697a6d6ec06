"""Flooding the review queue: one requester's open release requests are capped per project
(409 naming the limit), and another user's request stays reachable through the pages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, Api, Server

LIMIT = 5
GROUPS = {"alice": ("spe:proj-a",), "amy": ("spe:proj-a",),
          "rita": ("spe:proj-a", "spe:proj-a:role=reviewer")}
RR = "/spe/v1/release-requests"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("flood")
    policy = yaml.safe_load((ROOT / "tests/fixtures/policy/two-projects.yaml").read_text())
    (home.parent / "flood-policy.yaml").write_text(yaml.safe_dump(policy))
    server = Server(home=home, catalog=catalog_dir, env_extra={
        "SPE_POLICY_FILE": str(home.parent / "flood-policy.yaml"),
        "SPE_MAX_OPEN_RELEASE_REQUESTS": str(LIMIT)}).start()
    yield server
    server.stop()


def as_user(srv: Server, name: str) -> Api:
    return Api(srv.url, srv.token(name, groups=GROUPS[name]))


def completed_run(api: Api) -> str:
    run_id = api.run_id(api.submit("sleepy", {"seconds": 0}))
    assert api.wait(run_id) == "COMPLETE"
    return run_id


def ask(api: Api, run_id: str) -> Any:
    return api.post(RR, json={"run_id": run_id, "files": ["results/done.txt"],
                              "justification": "A marker file, no data."})


def test_release_request_flood_is_limited_and_others_stay_listed(srv: Server) -> None:
    alice, amy, rita = (as_user(srv, n) for n in ("alice", "amy", "rita"))
    amys = ask(amy, completed_run(amy))
    assert amys.status_code == 201, amys.text
    run_id = completed_run(alice)
    for _ in range(LIMIT):
        assert ask(alice, run_id).status_code == 201
    over = ask(alice, run_id)
    assert over.status_code == 409, over.text
    assert f"limit is {LIMIT}" in over.json()["msg"]
    assert ask(amy, completed_run(amy)).status_code == 201  # the limit is per requester
    seen: list[str] = []
    token = ""
    for _ in range(20):
        page = rita.get(RR, params={"page_size": 2, "page_token": token,
                                    "role": "reviewer"}).json()
        seen += [r["id"] for r in page["requests"]]
        token = page.get("next_page_token") or ""
        if not token:
            break
    assert amys.json()["id"] in seen
    assert len(seen) == len(set(seen)) == LIMIT + 2
