"""The narrow reads of the RunRepository port (``summaries``, ``summary``): the same runs,
in the same order, with the same fields as ``page``/``get``, for every visibility and
filter ``page`` takes; on SQLite and PostgreSQL like the rest of the contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from spe.adapters.db.repository import SqlRunRepository
from spe.adapters.db.session import make_sessions
from spe.domain.models import Run, RunFilter, Visibility
from spe.domain.run_summary import RunSummary
from spe.domain.states import RunState
from tests.contract.test_run_repository_contract import ALICE, MEMBER, make_run

S = RunState
T1 = datetime(2026, 3, 2, 8, 30, 5, tzinfo=UTC)


def projected(run: Run, tags: bool = True) -> RunSummary:
    assert run.seq is not None
    return RunSummary(id=run.id, owner_sub=run.owner_sub, project=run.project,
                      state=run.state, start_time=run.start_time, end_time=run.end_time,
                      seq=run.seq, tags=dict(run.request.tags) if tags else {},
                      workflow=f"{run.workflow_id}@{run.workflow_version}", kind=run.kind)


@pytest.fixture
def repo(engine: Engine) -> SqlRunRepository:
    repo = SqlRunRepository(make_sessions(engine))
    states = [S.QUEUED, S.RUNNING, S.COMPLETE, S.EXECUTOR_ERROR, S.CANCELED]
    for i in range(30):
        owner = ("alice", "bob", "carol")[i % 3]
        tags = {"batch": str(i % 4), "suite": "all"} | ({"odd": "yes"} if i % 2 else {})
        times = {"start_time": T1 + timedelta(minutes=i)} if i % 5 else {}
        if i % 7 == 0:
            times["end_time"] = T1 + timedelta(hours=1, seconds=i)
        repo.add(make_run(owner, states[i % 5], tags, project=("pa", "pb", "")[i % 3],
                          **times))
        if i % 4 == 1:  # TES tasks among the runs, tagged alike
            repo.add(make_run(owner, states[i % 3], tags, project=("pa", "pb", "")[i % 3],
                              kind="task", task={"name": f"t{i}", "tags": tags}))
    return repo


def expected(repo: SqlRunRepository, visible: Visibility, flt: RunFilter) -> list[str]:
    """The ids a listing must return, newest first, decided here in Python from every
    stored run: the visibility rules and the filters, independent of any query plan."""
    everything = repo.page(Visibility("", everything=True), RunFilter(), None, 10_000)
    assert len(everything) > 30

    def shown(run: Run) -> bool:
        return visible.everything or run.project in visible.projects or (
            run.owner_sub == visible.owner_sub and run.project in visible.member_of)

    def matches(run: Run) -> bool:
        tags = run.request.tags
        return ((not flt.kind or run.kind == flt.kind)
                and (not flt.states or run.state in flt.states)
                and all(k in tags and (v is None or tags[k] == v) for k, v in flt.tags)
                and (not flt.workflow or flt.workflow == f"{run.workflow_id}@"
                     f"{run.workflow_version}"))
    return [r.id for r in everything if shown(r) and matches(r)]


VISIBLE = {
    "owner": ALICE,
    "shared": Visibility("dev|alice", projects=("pa",), member_of=MEMBER),
    "operator": Visibility("dev|zed", everything=True),
    "nobody": Visibility("dev|nobody", member_of=MEMBER),
}
FILTERS = {
    "none": RunFilter(),
    "state": RunFilter(states=(S.COMPLETE, S.RUNNING)),
    "tag": RunFilter(tags=(("batch", "1"),)),
    "tags": RunFilter(tags=(("batch", "1"), ("odd", "yes"))),
    "no-match tag": RunFilter(tags=(("batch", "none"),)),
    "state and tag": RunFilter(states=(S.QUEUED,), tags=(("suite", "all"),)),
    "any value of a tag": RunFilter(tags=(("batch", None),)),
    "runs only": RunFilter(kind="run", workflow="sleepy@1.0.0"),
    "one state": RunFilter(states=(S.COMPLETE,)),
    "one state and a tag": RunFilter(states=(S.RUNNING,), tags=(("batch", "1"),)),
    "any value, then a value": RunFilter(tags=(("odd", None), ("batch", "3"))),
    "tasks": RunFilter(kind="task"),
    "tasks with a state and a tag": RunFilter(kind="task", states=(S.QUEUED,),
                                              tags=(("suite", "all"),)),
    "two tags, the rarer second": RunFilter(tags=(("suite", "all"), ("batch", "2"))),
}


@pytest.mark.parametrize("who", list(VISIBLE))
@pytest.mark.parametrize("flt", list(FILTERS))
@pytest.mark.parametrize(("window", "cap"), [(1000, 10_000), (1, 10_000), (3, 10_000),
                                            (1, 0), (3, 0)],
                         ids=["tag walk", "on after one tagged run, the shorter walk",
                              "on after three, the shorter walk",
                              "on after one, the caller's runs",
                              "on after three, the caller's runs"])
def test_summaries_are_the_page_projected(repo: SqlRunRepository, who: str,
                                          flt: str, window: int, cap: int) -> None:
    """Every plan a listing can take (``window`` and ``cap`` lowered to reach the later
    walks on a few runs) lists the same runs as ``page`` and as the rules say."""
    repo.tag_window, repo.count_cap = window, cap
    visible, filters = VISIBLE[who], FILTERS[flt]
    before, listed = None, []
    while True:
        page = repo.page(visible, filters, before, 4)
        assert repo.summaries(visible, filters, before, 4) == [projected(r) for r in page]
        listed += [r.id for r in page]
        if len(page) < 4:
            break
        assert before is None or page[-1].seq < before  # keyset: always further down
        assert len(listed) <= 60
        before = page[-1].seq
    assert listed == expected(repo, visible, filters)


def test_summary_is_the_run_projected_without_tags(repo: SqlRunRepository) -> None:
    for run in repo.page(VISIBLE["operator"], RunFilter(), None, 100):
        assert repo.summary(run.id) == projected(run, tags=False)


def test_summary_of_an_unknown_run_is_none(repo: SqlRunRepository) -> None:
    assert repo.summary("no-such-run") is None


def test_times_come_back_as_aware_utc(repo: SqlRunRepository) -> None:
    ended = [s for s in repo.summaries(VISIBLE["operator"], RunFilter(), None, 100)
             if s.end_time is not None]
    assert ended
    for item in ended:
        assert item.end_time is not None and item.end_time.utcoffset() == timedelta(0)
