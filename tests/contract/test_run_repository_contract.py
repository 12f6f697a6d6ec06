"""The RunRepository port's contract (``spe/domain/ports.py``), checked on SQLite and on a
real PostgreSQL server (``conftest.db_url``; task logs and the audit log have suites of
their own). The schema always comes from the real Alembic migrations, so this suite also
proves that the migrations run on both databases."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from spe.adapters.db.repository import SqlRunRepository
from spe.adapters.db.session import alembic_config, make_engine, make_sessions, upgrade
from spe.adapters.db.tables import Base
from spe.domain.models import (
    OutputFile,
    Run,
    RunEnding,
    RunFilter,
    RunRequest,
    SubmissionKey,
    Visibility,
)
from spe.domain.ports import SubmissionKeyTaken
from spe.domain.states import FINAL_STATES, RunState

S = RunState
CEST = timezone(timedelta(hours=2))  # a non-UTC offset: must come back as the same instant
T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
TABLES = {"runs", "run_tags", "task_logs", "audit_events", "submission_keys"}


@pytest.fixture
def repo(engine: Engine) -> SqlRunRepository:
    return SqlRunRepository(make_sessions(engine))


MEMBER = ("", "pa")  # the callers' projects (make_run's runs name none: "")
ALICE = Visibility("dev|alice", member_of=MEMBER)


def make_run(owner: str = "alice", state: RunState = S.QUEUED,
             tags: dict[str, str] | None = None, **kw: object) -> Run:
    request = RunRequest(workflow_url="sleepy@1.0.0", workflow_type="SMK",
                         workflow_type_version="9", workflow_params={"seconds": 0},
                         tags=dict(tags or {}))
    fields: dict[str, object] = {"workflow_id": "sleepy", "workflow_version": "1.0.0", **kw}
    return Run(id=uuid.uuid4().hex, owner_sub=f"dev|{owner}", owner_name=owner, state=state,
               request=request, bundle_digest="sha256:" + "ab" * 32, engine="snakemake",
               engine_options={}, created_at=T0, **fields)  # type: ignore[arg-type]


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


# --- add / get / guarded writes ---------------------------------------------------------


def test_add_then_get_round_trips_every_field(repo: SqlRunRepository) -> None:
    request = RunRequest(
        workflow_url="tsv-summary@1.0.0", workflow_type="SMK", workflow_type_version="9",
        workflow_params={"name": "Ærø \u2013 東京 ✓", "n": 3, "ratio": 0.25, "flag": True,
                         "none": None, "nested": {"list": [1, "two", {"three": 3}]}},
        workflow_engine="snakemake", workflow_engine_version="9.1.0",
        workflow_engine_parameters={"cores": "2", "keep_going": "true"},
        tags={"project": "p1", "batch": "7", "ünïcode": "välue"},
    )
    run = Run(
        id=uuid.uuid4().hex, owner_sub="dev|alice", owner_name="alice", project="p1",
        state=S.COMPLETE, request=request, workflow_id="tsv-summary", workflow_version="1.0.0",
        bundle_digest="sha256:" + "cd" * 32, engine="snakemake",
        engine_options={"cores": 2, "keep_going": True},
        created_at=datetime(2026, 3, 1, 14, 0, 0, 1, tzinfo=CEST),
        start_time=datetime(2026, 3, 1, 14, 0, 5, 500000, tzinfo=CEST),
        end_time=datetime(2026, 3, 1, 12, 1, 0, tzinfo=UTC),
        exit_code=0,
        handle={"pid": 1234, "pgid": 1234, "started": 1.5, "argv": ["snakemake", "-j", "2"],
                "meta": {"host": "node-1"}},
        cmd=("snakemake", "--cores", "2"),
        system_logs=["first line", "second line ✓"],
        outputs=[OutputFile("results/summary.csv", 42, "0" * 64),
                 OutputFile("results/summary.png", 1 << 33, "f" * 64)],
    )
    added = repo.add(run)
    assert added.seq > 0

    got = repo.get(run.id)

    assert got is not None
    assert got == run  # aware datetimes compare as instants
    assert got.seq == added.seq
    for value in (got.created_at, got.start_time, got.end_time):
        assert_utc(value)
    assert got.created_at == datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC)
    assert got.request.tags == {"project": "p1", "batch": "7", "ünïcode": "välue"}
    assert got.request.workflow_params["nested"] == {"list": [1, "two", {"three": 3}]}
    assert got.outputs[1].size == 1 << 33


def test_add_then_get_keeps_empty_optional_fields_empty(repo: SqlRunRepository) -> None:
    run = repo.add(make_run())
    got = repo.get(run.id)
    assert got is not None
    assert (got.start_time, got.end_time, got.exit_code, got.handle) == (None, None, None, None)
    assert (got.cmd, got.system_logs, got.outputs, got.project) == ((), [], [], "")
    assert got.request.tags == {}


def test_get_of_an_unknown_run_is_none(repo: SqlRunRepository) -> None:
    assert repo.get("0" * 32) is None


def test_seq_grows_with_each_add(repo: SqlRunRepository) -> None:
    seqs = [repo.add(make_run()).seq for _ in range(4)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 4


def test_record_handle_writes_handle_cmd_and_appends_a_log_line(
        repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.INITIALIZING, system_logs=["queued"]))
    assert repo.record_handle(run.id, {"pid": 99}, ("snakemake", "-j", "1"), "submitted")
    got = repo.get(run.id)
    assert got is not None
    assert (got.handle, got.cmd, got.system_logs) == (
        {"pid": 99}, ("snakemake", "-j", "1"), ["queued", "submitted"])
    assert repo.record_handle(run.id, {"pid": 100})  # cmd and logs stay as they were
    got = repo.get(run.id)
    assert got is not None
    assert (got.handle, got.cmd, got.system_logs) == (
        {"pid": 100}, ("snakemake", "-j", "1"), ["queued", "submitted"])


def test_record_handle_of_a_run_that_ended_meanwhile_writes_nothing(
        repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.INITIALIZING))
    assert repo.transition(run.id, frozenset({S.INITIALIZING}), S.CANCELED, T0)
    assert not repo.record_handle(run.id, {"pid": 7}, ("x",), "late")
    got = repo.get(run.id)
    assert got is not None
    assert (got.state, got.end_time, got.handle, got.system_logs) == (
        S.CANCELED, T0, None, [])


def _ending(state: RunState = S.COMPLETE, note: str = "done") -> RunEnding:
    return RunEnding(state, T0 + timedelta(minutes=5), 0,
                     [OutputFile("out.txt", 1, "e" * 64)], note)


def test_finish_with_the_claim_writes_state_end_time_exit_code_outputs_and_log(
        repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.RUNNING, start_time=T0, system_logs=["started"]))
    assert repo.claim_finish(run.id, S.RUNNING, "tok", T0, T0 + timedelta(minutes=1))
    assert repo.finish(run.id, "tok", S.RUNNING, _ending())
    got = repo.get(run.id)
    assert got is not None
    assert (got.state, got.start_time, got.end_time, got.exit_code) == (
        S.COMPLETE, T0, T0 + timedelta(minutes=5), 0)
    assert got.outputs == [OutputFile("out.txt", 1, "e" * 64)]
    assert got.system_logs == ["started", "done"]
    assert_utc(got.end_time)


def test_finish_without_the_claim_or_from_another_state_writes_nothing(
        repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.RUNNING))
    assert not repo.finish(run.id, "nobody", S.RUNNING, _ending())  # no claim at all
    assert repo.claim_finish(run.id, S.RUNNING, "tok", T0, T0 + timedelta(minutes=1))
    assert not repo.finish(run.id, "other", S.RUNNING, _ending())  # not the holder
    assert not repo.finish(run.id, "tok", S.CANCELING, _ending(S.CANCELED))  # wrong state
    got = repo.get(run.id)
    assert got is not None
    assert (got.state, got.end_time, got.outputs, got.system_logs) == (
        S.RUNNING, None, [], [])


def test_a_finish_claim_has_one_holder_until_it_expires(repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.RUNNING))
    until = T0 + timedelta(minutes=1)
    assert not repo.claim_finish(run.id, S.CANCELING, "a", T0, until)  # not in that state
    assert repo.claim_finish(run.id, S.RUNNING, "a", T0, until)
    assert not repo.claim_finish(run.id, S.RUNNING, "b", T0 + timedelta(seconds=59), until)
    late = T0 + timedelta(minutes=2)  # the holder died: its claim is taken over
    assert repo.claim_finish(run.id, S.RUNNING, "b", late, late + timedelta(minutes=1))
    assert not repo.finish(run.id, "a", S.RUNNING, _ending())
    assert repo.finish(run.id, "b", S.RUNNING, _ending())


def test_a_released_claim_can_be_taken_again(repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.RUNNING))
    until = T0 + timedelta(minutes=1)
    assert repo.claim_finish(run.id, S.RUNNING, "a", T0, until)
    repo.release_finish(run.id, "b")  # only the holder releases
    assert not repo.claim_finish(run.id, S.RUNNING, "b", T0, until)
    repo.release_finish(run.id, "a")
    assert repo.claim_finish(run.id, S.RUNNING, "b", T0, until)


def test_concurrent_claims_from_many_threads_have_exactly_one_winner(
        repo: SqlRunRepository) -> None:
    threads = 8
    run = repo.add(make_run(state=S.RUNNING))
    barrier = threading.Barrier(threads)

    def attempt(i: int) -> bool:
        barrier.wait(timeout=30)
        return repo.claim_finish(run.id, S.RUNNING, f"t{i}", T0, T0 + timedelta(minutes=1))

    with ThreadPoolExecutor(threads) as pool:
        assert list(pool.map(attempt, range(threads))).count(True) == 1


def test_a_transition_does_not_erase_what_finish_wrote(repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.RUNNING))
    assert repo.claim_finish(run.id, S.RUNNING, "tok", T0, T0 + timedelta(minutes=1))
    assert repo.finish(run.id, "tok", S.RUNNING, _ending())
    assert not repo.transition(run.id, frozenset({S.RUNNING}), S.CANCELED, T0)
    assert not repo.record_handle(run.id, {"pid": 5})
    got = repo.get(run.id)
    assert got is not None
    assert (got.state, got.end_time, got.handle) == (S.COMPLETE, T0 + timedelta(minutes=5),
                                                     None)


def test_concurrent_log_lines_are_all_kept(repo: SqlRunRepository) -> None:
    threads = 8
    run = repo.add(make_run(state=S.RUNNING))
    barrier = threading.Barrier(threads)

    def note(i: int) -> bool:
        barrier.wait(timeout=30)
        return repo.record_handle(run.id, {"pid": 2 + i}, note=f"line {i}")

    with ThreadPoolExecutor(threads) as pool:
        assert all(pool.map(note, range(threads)))
    got = repo.get(run.id)
    assert got is not None
    assert sorted(got.system_logs) == sorted(f"line {i}" for i in range(threads))


def test_mark_purged_records_the_purge_once(repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.COMPLETE))
    assert repo.mark_purged(run.id, T0, "purged by alice")
    assert not repo.mark_purged(run.id, T0 + timedelta(hours=1), "purged again")
    got = repo.get(run.id)
    assert got is not None
    assert (got.purged_at, got.system_logs) == (T0, ["purged by alice"])


# --- submission keys ----------------------------------------------------------------------


def _key(key: str = "k-1", digest: str = "sha256:aa", at: datetime = T0) -> SubmissionKey:
    return SubmissionKey("dev|alice", key, digest, at, timedelta(hours=1))


def test_a_key_is_stored_with_its_run_and_found_within_its_window(
        repo: SqlRunRepository) -> None:
    run = repo.add(make_run(), key=_key())
    assert repo.submission_key("dev|alice", "k-1", T0) == (run.id, "sha256:aa")
    assert repo.submission_key("dev|alice", "k-1", T0 + timedelta(seconds=1)) is None
    assert repo.submission_key("dev|bob", "k-1", T0 - timedelta(days=1)) is None


def test_a_key_in_use_stores_no_second_run(repo: SqlRunRepository) -> None:
    first = repo.add(make_run(), key=_key())
    second = make_run()
    with pytest.raises(SubmissionKeyTaken) as taken:
        repo.add(second, key=_key(digest="sha256:bb", at=T0 + timedelta(minutes=5)))
    assert (taken.value.run_id, taken.value.request_digest) == (first.id, "sha256:aa")
    assert repo.get(second.id) is None


def test_an_expired_key_names_the_new_run(repo: SqlRunRepository) -> None:
    repo.add(make_run(), key=_key())
    later = T0 + timedelta(hours=2)
    run = repo.add(make_run(), key=_key(digest="sha256:bb", at=later))
    assert repo.submission_key("dev|alice", "k-1", later - timedelta(hours=1)) == (
        run.id, "sha256:bb")


def test_concurrent_adds_with_one_key_store_one_run(repo: SqlRunRepository) -> None:
    threads = 6
    barrier = threading.Barrier(threads)
    runs = [make_run() for _ in range(threads)]

    def attempt(run: Run) -> str:
        barrier.wait(timeout=30)
        try:
            return repo.add(run, key=_key()).id
        except SubmissionKeyTaken as taken:
            return taken.run_id

    with ThreadPoolExecutor(threads) as pool:
        ids = set(pool.map(attempt, runs))
    assert len(ids) == 1
    assert sum(repo.get(r.id) is not None for r in runs) == 1


def test_prune_removes_keys_older_than_the_window_only(repo: SqlRunRepository) -> None:
    repo.add(make_run(), key=_key("old", at=T0))
    repo.add(make_run(), key=_key("new", at=T0 + timedelta(hours=2)))
    assert repo.prune_submission_keys(T0 + timedelta(hours=1)) == 1
    assert repo.submission_key("dev|alice", "old", T0 - timedelta(days=1)) is None
    assert repo.submission_key("dev|alice", "new", T0) is not None


# --- transition: compare-and-set ----------------------------------------------------------


def test_transition_from_an_allowed_state_moves_the_run(repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.QUEUED))
    assert repo.transition(run.id, frozenset({S.QUEUED, S.PAUSED}), S.INITIALIZING) is True
    got = repo.get(run.id)
    assert got is not None
    assert got.state == S.INITIALIZING
    assert (got.start_time, got.end_time) == (None, None)


def test_transition_from_another_state_returns_false_and_changes_nothing(
        repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.RUNNING, start_time=T0))
    assert repo.transition(run.id, frozenset({S.QUEUED}), S.CANCELED, at=T0) is False
    got = repo.get(run.id)
    assert got is not None
    assert (got.state, got.start_time, got.end_time) == (S.RUNNING, T0, None)


def test_transition_of_an_unknown_run_returns_false(repo: SqlRunRepository) -> None:
    assert repo.transition("0" * 32, frozenset({S.QUEUED}), S.INITIALIZING) is False


def test_transition_with_no_from_states_returns_false(repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.QUEUED))
    assert repo.transition(run.id, frozenset(), S.INITIALIZING) is False
    assert repo.get(run.id).state == S.QUEUED  # type: ignore[union-attr]


def test_transition_to_running_sets_start_time(repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.INITIALIZING))
    at = datetime(2026, 3, 1, 15, 30, tzinfo=CEST)
    assert repo.transition(run.id, frozenset({S.INITIALIZING}), S.RUNNING, at=at)
    got = repo.get(run.id)
    assert got is not None
    assert got.start_time == at
    assert_utc(got.start_time)
    assert got.end_time is None


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_transition_to_a_final_state_sets_end_time_and_keeps_start_time(
        repo: SqlRunRepository, final: RunState) -> None:
    run = repo.add(make_run(state=S.RUNNING, start_time=T0))
    at = T0 + timedelta(seconds=90)
    assert repo.transition(run.id, frozenset({S.RUNNING}), final, at=at)
    got = repo.get(run.id)
    assert got is not None
    assert (got.state, got.start_time, got.end_time) == (final, T0, at)
    assert_utc(got.end_time)


def test_transition_without_a_time_leaves_times_alone(repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.RUNNING, start_time=T0))
    assert repo.transition(run.id, frozenset({S.RUNNING}), S.COMPLETE)
    got = repo.get(run.id)
    assert got is not None
    assert (got.state, got.start_time, got.end_time) == (S.COMPLETE, T0, None)


def test_concurrent_transitions_from_many_threads_have_exactly_one_winner(
        repo: SqlRunRepository) -> None:
    threads = 12
    for _ in range(3):  # a few rounds: a race that is won by luck once should not pass
        run = repo.add(make_run(state=S.QUEUED))
        targets = [S.INITIALIZING if i % 2 else S.CANCELED for i in range(threads)]
        barrier = threading.Barrier(threads)

        def attempt(target: RunState, run_id: str = run.id,
                    barrier: threading.Barrier = barrier) -> bool:
            barrier.wait(timeout=30)
            return repo.transition(run_id, frozenset({S.QUEUED}), target, at=T0)

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(attempt, targets))

        assert results.count(True) == 1, results
        winner = targets[results.index(True)]
        got = repo.get(run.id)
        assert got is not None
        assert got.state == winner
        assert got.end_time == (T0 if winner in FINAL_STATES else None)


# --- page / state_counts / active ---------------------------------------------------------


def _ids(runs: list[Run]) -> list[str]:
    return [r.id for r in runs]


def test_page_is_newest_first_by_seq(repo: SqlRunRepository) -> None:
    runs = [repo.add(make_run()) for _ in range(5)]
    page = repo.page(ALICE, RunFilter(), None, 10)
    assert _ids(page) == _ids(runs)[::-1]
    assert [r.seq for r in page] == sorted((r.seq for r in runs), reverse=True)


def test_page_honours_limit_and_before_seq(repo: SqlRunRepository) -> None:
    runs = [repo.add(make_run()) for _ in range(5)]
    newest_first = _ids(runs)[::-1]

    first = repo.page(ALICE, RunFilter(), None, 2)
    assert _ids(first) == newest_first[:2]
    second = repo.page(ALICE, RunFilter(), first[-1].seq, 2)
    assert _ids(second) == newest_first[2:4]
    third = repo.page(ALICE, RunFilter(), second[-1].seq, 2)
    assert _ids(third) == newest_first[4:]
    assert repo.page(ALICE, RunFilter(), third[-1].seq, 2) == []


def test_page_shows_shared_projects_and_everything_to_whom_it_may(
        repo: SqlRunRepository) -> None:
    mine = repo.add(make_run("alice", project="pa"))
    team = repo.add(make_run("bob", project="pa"))
    other = repo.add(make_run("carol", project="pb"))
    shared = Visibility("dev|alice", projects=("pa",), member_of=MEMBER)
    assert set(_ids(repo.page(shared, RunFilter(), None, 100))) == {mine.id, team.id}
    assert set(_ids(repo.page(Visibility("dev|zed", everything=True), RunFilter(), None,
                              100))) == {mine.id, team.id, other.id}
    assert repo.state_counts(shared) == {"QUEUED": 2}


def test_page_shows_only_the_owners_runs(repo: SqlRunRepository) -> None:
    alice = [repo.add(make_run("alice")) for _ in range(3)]
    bob = [repo.add(make_run("bob")) for _ in range(2)]
    assert set(_ids(repo.page(ALICE, RunFilter(), None, 100))) == set(_ids(alice))
    bobs = Visibility("dev|bob", member_of=MEMBER)
    assert set(_ids(repo.page(bobs, RunFilter(), None, 100))) == set(_ids(bob))
    assert repo.page(Visibility("dev|carol", member_of=MEMBER), RunFilter(), None, 100) == []
    by_name = Visibility("alice", member_of=MEMBER)
    assert repo.page(by_name, RunFilter(), None, 100) == []  # sub, not name


def test_page_filters_by_state(repo: SqlRunRepository) -> None:
    done = repo.add(make_run(state=S.COMPLETE))
    running = repo.add(make_run(state=S.RUNNING))
    repo.add(make_run(state=S.QUEUED))
    repo.add(make_run("bob", state=S.COMPLETE))

    only_done = repo.page(ALICE, RunFilter(states=(S.COMPLETE,)), None, 100)
    assert _ids(only_done) == [done.id]
    either = repo.page(ALICE, RunFilter(states=(S.COMPLETE, S.RUNNING)), None, 100)
    assert _ids(either) == [running.id, done.id]
    assert repo.page(ALICE, RunFilter(states=(S.CANCELED,)), None, 100) == []


def test_page_filters_by_tags_requiring_every_tag(repo: SqlRunRepository) -> None:
    a1 = repo.add(make_run(tags={"a": "1"}))
    a1b2 = repo.add(make_run(tags={"a": "1", "b": "2"}))
    repo.add(make_run(tags={"b": "2"}))
    repo.add(make_run(tags={"a": "2", "b": "2"}))
    repo.add(make_run())
    repo.add(make_run("bob", tags={"a": "1", "b": "2"}))

    def tagged(*tags: tuple[str, str], states: tuple[RunState, ...] = ()) -> list[str]:
        return _ids(repo.page(ALICE, RunFilter(states=states, tags=tags), None, 100))

    assert tagged(("a", "1")) == [a1b2.id, a1.id]
    assert tagged(("a", "1"), ("b", "2")) == [a1b2.id]
    assert tagged(("a", "1"), ("b", "3")) == []
    assert tagged(("c", "1")) == []
    assert tagged(("a", "1"), states=(S.QUEUED,)) == [a1b2.id, a1.id]
    assert tagged(("a", "1"), states=(S.COMPLETE,)) == []


def test_page_filters_by_workflow_id_or_id_and_version(repo: SqlRunRepository) -> None:
    old = repo.add(make_run(workflow_id="tsv", workflow_version="1.0.0"))
    new = repo.add(make_run(workflow_id="tsv", workflow_version="1.1.0"))
    repo.add(make_run())
    repo.add(make_run("bob", workflow_id="tsv", workflow_version="1.1.0"))

    def of(workflow: str) -> list[str]:
        return _ids(repo.page(ALICE, RunFilter(workflow=workflow), None, 100))

    assert of("tsv") == [new.id, old.id]
    assert of("tsv@1.0.0") == [old.id]
    assert of("tsv@2.0.0") == [] and of("ts") == []


def test_page_with_filters_pages_by_before_seq(repo: SqlRunRepository) -> None:
    tagged = [repo.add(make_run(tags={"k": "v"})) for _ in range(3)]
    for _ in range(3):
        repo.add(make_run())
    flt = RunFilter(tags=(("k", "v"),))
    first = repo.page(ALICE, flt, None, 2)
    rest = repo.page(ALICE, flt, first[-1].seq, 2)
    assert _ids(first) + _ids(rest) == _ids(tagged)[::-1]


def test_an_ex_member_sees_none_of_their_old_runs(repo: SqlRunRepository) -> None:
    kept = repo.add(make_run("alice", project="pa"))
    left = repo.add(make_run("alice", project="pb"))
    assert set(_ids(repo.page(Visibility("dev|alice", member_of=("pa",)), RunFilter(), None,
                              100))) == {kept.id}
    assert repo.page(Visibility("dev|alice"), RunFilter(), None, 100) == []  # member of none
    assert repo.state_counts(Visibility("dev|alice")) == {}
    both = Visibility("dev|alice", member_of=("", "pa", "pb"))
    assert set(_ids(repo.page(both, RunFilter(), None, 100))) == {kept.id, left.id}


def test_state_counts_are_per_owner(repo: SqlRunRepository) -> None:
    for state in (S.QUEUED, S.QUEUED, S.COMPLETE, S.EXECUTOR_ERROR):
        repo.add(make_run("alice", state=state))
    repo.add(make_run("bob", state=S.RUNNING))

    assert repo.state_counts(ALICE) == {"QUEUED": 2, "COMPLETE": 1, "EXECUTOR_ERROR": 1}
    assert repo.state_counts(Visibility("dev|bob", member_of=MEMBER)) == {"RUNNING": 1}
    assert repo.state_counts(Visibility("dev|carol", member_of=MEMBER)) == {}


def test_state_counts_follow_transitions(repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.QUEUED))
    repo.transition(run.id, frozenset({S.QUEUED}), S.CANCELED, at=T0)
    assert repo.state_counts(ALICE) == {"CANCELED": 1}


def test_active_lists_every_owners_unfinished_runs_only(repo: SqlRunRepository) -> None:
    by_state = {state: repo.add(make_run("bob" if i % 2 else "alice", state=state))
                for i, state in enumerate(RunState)}
    active = repo.active()
    expected = {r.id for state, r in by_state.items() if state not in FINAL_STATES}
    assert {r.id for r in active} == expected
    assert len(active) == len(expected)
    assert all(r.state not in FINAL_STATES for r in active)


def test_active_drops_a_run_once_it_ends(repo: SqlRunRepository) -> None:
    run = repo.add(make_run(state=S.RUNNING))
    assert _ids(repo.active()) == [run.id]
    repo.transition(run.id, frozenset({S.RUNNING}), S.COMPLETE, at=T0)
    assert repo.active() == []


# --- migrations ---------------------------------------------------------------------------


def test_migrations_downgrade_to_base_and_upgrade_again(db_url: str) -> None:
    upgrade(db_url)
    eng = make_engine(db_url)
    try:
        assert set(inspect(eng).get_table_names()) >= TABLES
        command.downgrade(alembic_config(db_url), "base")
        assert not set(inspect(eng).get_table_names()) & TABLES
        upgrade(db_url)
        assert set(inspect(eng).get_table_names()) >= TABLES
        repo = SqlRunRepository(make_sessions(eng))
        run = repo.add(make_run())
        assert repo.get(run.id) == run
    finally:
        eng.dispose()


def test_migrations_create_exactly_the_schema_of_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_a_run_that_ended_with_an_exit_code_has_a_start_time(repo: SqlRunRepository) -> None:
    run = repo.add(make_run())
    assert repo.transition(run.id, frozenset({RunState.QUEUED}), RunState.INITIALIZING)
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert repo.claim_finish(run.id, RunState.INITIALIZING, "t", at,
                             at + timedelta(minutes=5))
    assert repo.finish(run.id, "t", RunState.INITIALIZING,
                       RunEnding(RunState.COMPLETE, at, 0, []))
    ended = repo.get(run.id)
    assert ended is not None and ended.start_time == at == ended.end_time
