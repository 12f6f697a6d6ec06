"""Ports: the small interfaces adapters implement. Each docstring is the contract that the
matching suite in ``tests/contract/`` checks against every adapter and every fake."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from spe.domain.airlock import (
    ReleaseCursor,
    ReleaseFilter,
    ReleaseRequest,
    ReleaseState,
    Vote,
    WorkClaim,
)
from spe.domain.catalog import WorkflowEntry
from spe.domain.jobdir import JobDir
from spe.domain.models import (
    JSON,
    AuditEvent,
    Principal,
    Run,
    RunEnding,
    RunFilter,
    SubmissionKey,
    TaskLog,
    Visibility,
)
from spe.domain.resources import SiteLimits
from spe.domain.run_summary import RunSummary
from spe.domain.states import RunState


@dataclass(frozen=True)
class JobAccount:
    """Whom a job runs as on a cluster: the researcher's POSIX account, the project's POSIX
    group (owner of the run's work directory) and the project's SLURM account."""

    user: str
    group: str
    slurm_account: str = ""


@dataclass(frozen=True)
class EngineTarget:
    """Where an engine sends its jobs: ``local`` (in its own process tree) or ``slurm``
    (one SLURM job per rule or process, under ``slurm_account`` in ``partition``), with the
    default resources of each job (mem_mb, runtime minutes) already clamped.

    ``rule_jobs`` says where a run's rules go when the head job runs on a cluster:
    ``cluster`` (one job each, submitted by the engine) or ``in_head_job`` (the engine runs
    them itself, inside the head job's allocation; the entry's ``rule_jobs`` wins).
    ``status_init_seconds`` is the engine's first wait before asking about its jobs."""

    executor: str = "local"
    slurm_account: str = ""
    partition: str = ""
    max_jobs: int = 8
    job_resources: dict[str, int] = field(default_factory=dict)
    rule_jobs: str = "cluster"
    status_init_seconds: int = 1

    def rule_jobs_on_cluster(self, entry_rule_jobs: str = "") -> bool:
        """Whether the engine submits its rules as cluster jobs for this entry."""
        return self.executor != "local" and (entry_rule_jobs or self.rule_jobs) == "cluster"


LOCAL = EngineTarget()


@dataclass(frozen=True)
class ExecutionSpec:
    """What to run: an argv list (never a shell string), in ``workdir``.

    ``env`` is added to a minimal environment; ``stdout``/``stderr`` are files the executor
    writes the process's streams to. ``resources`` holds cpus / memory_mb / time_minutes.
    ``account``, when set, is whom the work runs as (executors that cannot switch
    identity refuse a spec that names one other than their own). ``scheduler`` holds
    checked scheduler options (``partition``, ``qos``) an executor may honour.
    """

    run_id: str
    argv: tuple[str, ...]
    workdir: Path
    stdout: Path
    stderr: Path
    env: dict[str, str] = field(default_factory=dict)
    resources: dict[str, int] = field(default_factory=dict)
    account: JobAccount | None = None
    scheduler: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionStatus:
    """What an executor knows of one submission.

    ``state`` is RUNNING while it runs (QUEUED while a scheduler holds it, PAUSED while
    it is suspended), a final state when it ended: COMPLETE for exit 0, EXECUTOR_ERROR for
    another exit code, CANCELED after ``cancel``, SYSTEM_ERROR when it vanished without
    leaving an exit status. UNKNOWN means the executor cannot tell right now (its
    scheduler does not answer): callers keep the run as it is and ask again later.
    """

    state: RunState
    exit_code: int | None = None
    message: str = ""


class Executor(Protocol):
    """Runs one process tree per run and re-attaches to it from a JSON handle.

    - ``submit(spec)`` starts the work and returns a handle (JSON-serialisable dict) that is
      enough for *any* process to poll or cancel it later, even after a restart. A handle
      may carry ``label``, a short text for users ("SLURM job 1234"), shown in the run's
      system logs.
      Submitting never blocks until the work ends.
    - ``poll(handle)`` never raises for a missing process: it reports SYSTEM_ERROR.
      Polling a finished handle again gives the same answer.
    - ``cancel(handle)`` stops the process and every child it started; it is idempotent,
      and a later ``poll`` reports CANCELED (or the final state it had already reached).
    - ``find(run_id, workdir)`` returns the handle of a submission already made for this run
      (e.g. by a process that died before recording it), or None. Callers use it before
      ``submit`` so that a run is never started twice.
    """

    name: str

    def submit(self, spec: ExecutionSpec) -> JSON: ...

    def poll(self, handle: JSON) -> ExecutionStatus: ...

    def cancel(self, handle: JSON) -> None: ...

    def find(self, run_id: str, workdir: Path) -> JSON | None: ...


@runtime_checkable
class EndNotifier(Protocol):
    """An executor that can say when a job it runs has ended, so that the reconciler polls
    at once instead of at its next tick. Best effort: a notification can be lost (a
    restart, a process it cannot watch); the periodic reconcile still finds every end.
    ``notify_ends(callback)`` sets the one callback, called from any thread, with no
    arguments (the reconciler polls every active run)."""

    def notify_ends(self, callback: Callable[[], None]) -> None: ...


def _no_account(run: Run) -> JobAccount | None:
    return None


def _local_target(account: JobAccount | None, resources: dict[str, int]) -> EngineTarget:
    return LOCAL


@dataclass(frozen=True)
class ExecutorChoice:
    """What a site's executor choice gives the execution service: the ``executor``, whom
    a run's jobs run as (``job_account``, None: the service's own account), where its
    engine sends its rule jobs (``engine_target``), and the site's resource ``limits``."""

    executor: Executor
    job_account: Callable[[Run], JobAccount | None] = _no_account
    engine_target: Callable[[JobAccount | None, dict[str, int]], EngineTarget] = \
        _local_target
    limits: SiteLimits = field(default_factory=SiteLimits)


class WorkflowEngine(Protocol):
    """Builds the argv for one engine and reads back what the engine reported.

    - ``argv`` returns a list of strings, never a shell command line; user values reach
      the engine only through the params file it is given, never through the argv, a
      file ``argv`` writes (a generated config) or a shell. Option values arrive typed.
      ``target`` says whether the engine runs its jobs itself or submits them to SLURM.
    - ``task_logs`` parses the engine's own log in ``workdir``: one TaskLog per job,
      ordered by (numeric) job id. An absent or unreadable log gives none; a log still
      being written gives the jobs of its complete lines (never of a partial last line).
    - ``output_dir`` is where the run's outputs land, inside ``workdir``.
    - ``outputs`` lists the declared files a run produced (regular files, never symlinks
      or anything leading out), relative to ``output_dir``.
    """

    name: str
    workflow_type: str
    supported_options: frozenset[str]

    def version(self) -> str: ...

    def argv(self, entry: WorkflowEntry, bundle_dir: Path, params_file: Path,
             workdir: Path, options: JSON, *, target: EngineTarget = LOCAL
             ) -> list[str]: ...

    def task_logs(self, workdir: Path) -> list[TaskLog]: ...

    def output_dir(self, workdir: Path) -> Path: ...

    def outputs(self, entry: WorkflowEntry, workdir: Path) -> list[Path]: ...


class SubmissionKeyTaken(Exception):
    """Raised by ``RunRepository.add`` when the submission key is already in use within its
    window (a concurrent or earlier submission): carries that run's id and request digest."""

    def __init__(self, run_id: str, request_digest: str) -> None:
        super().__init__(run_id)
        self.run_id, self.request_digest = run_id, request_digest


class RunRepository(Protocol):
    """Stores runs (their task logs are a ``TaskLogRepository``'s).

    The state is written only by ``add`` (the initial state), ``transition`` and ``finish``,
    each an atomic compare-and-set on the state. Every other write is narrow and guarded:
    ``record_handle`` writes the handle of a run that has not ended; ``finish`` writes the
    end time, exit code and outputs in the same UPDATE as the move to a final state, and
    only for the holder of the run's finish claim (``claim_finish``, one holder at a time
    until its time runs out), so two reconcilers never both finish a run, and a stale
    writer never erases what the state machine wrote. System-log lines are appended,
    never overwritten.

    ``add`` with a ``SubmissionKey`` records the key in the run's transaction; a key the
    same caller used within its window raises ``SubmissionKeyTaken`` and stores nothing."""

    def add(self, run: Run, event: AuditEvent | None = None,
            key: SubmissionKey | None = None) -> Run:
        """Insert ``run`` and, in the same transaction, the audit ``event`` and ``key``."""
        ...

    def get(self, run_id: str) -> Run | None: ...

    def submission_key(self, owner_sub: str, key: str,
                       since: datetime) -> tuple[str, str] | None: ...

    def prune_submission_keys(self, before: datetime) -> int: ...

    def record_handle(self, run_id: str, handle: JSON, cmd: tuple[str, ...] | None = None,
                      note: str = "") -> bool: ...

    def claim_finish(self, run_id: str, from_state: RunState, token: str, now: datetime,
                     until: datetime) -> bool: ...

    def release_finish(self, run_id: str, token: str) -> None: ...

    def finish(self, run_id: str, token: str, from_state: RunState,
               ending: RunEnding) -> bool: ...

    def mark_purged(self, run_id: str, at: datetime, note: str) -> bool: ...

    def transition(self, run_id: str, from_states: frozenset[RunState], to: RunState,
                   at: datetime | None = None) -> bool: ...

    def page(self, visible: Visibility, flt: RunFilter, before_seq: int | None,
             limit: int) -> list[Run]: ...

    def summaries(self, visible: Visibility, flt: RunFilter, before_seq: int | None,
                  limit: int) -> list[RunSummary]:
        """``page``'s runs, as summaries with their tags, from a narrow query."""
        ...

    def summary(self, run_id: str) -> RunSummary | None:
        """A run's summary without its tags (a status answer), from a narrow query."""
        ...

    def state_counts(self, visible: Visibility) -> dict[str, int]: ...

    def active(self) -> list[Run]: ...


class TaskLogRepository(Protocol):
    """Stores the task logs of runs, as the engine last reported them.

    - ``replace_tasks(run_id, tasks)`` replaces the run's whole list in one transaction
      (readers see the old list or the new one), keeping the order given; task ids are
      unique within a run. For a run that does not exist it stores nothing.
    - ``tasks(run_id, start, limit)`` is the slice ``[start:start + limit]`` of that list;
      ``tasks_of(run_ids, limit)`` is ``tasks(run_id, 0, limit)`` for each of the runs (an
      unknown run maps to []); ``task(run_id, task_id)`` the task with that id, or None. A
      run's tasks are never another run's, and an unknown run has none.
    """

    def replace_tasks(self, run_id: str, tasks: list[TaskLog]) -> None: ...

    def tasks(self, run_id: str, start: int, limit: int) -> list[TaskLog]: ...

    def tasks_of(self, run_ids: list[str], limit: int) -> dict[str, list[TaskLog]]: ...

    def task(self, run_id: str, task_id: str) -> TaskLog | None: ...


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object. ``key`` is a relative POSIX path inside the store."""

    key: str
    size: int
    modified: datetime | None = None


class ObjectStore(Protocol):
    """Bytes under keys, in one root: a directory, or an S3 bucket and prefix.

    - Keys are relative POSIX paths; ``..`` segments, absolute paths, backslashes, NUL and
      control characters are refused with ``InvalidRequest`` before any I/O.
    - ``put`` streams from a binary file object (large objects in parts); ``get`` streams
      chunks and never loads the whole object; ``get_file`` downloads a whole object to a
      local file; a missing key raises ``NotFound`` (``stat`` returns None instead).
    - ``list(prefix)`` yields every object under ``prefix``, sorted by key.
    - ``delete`` is idempotent.
    """

    def put(self, key: str, stream: BinaryIO) -> ObjectInfo: ...

    def get(self, key: str) -> Iterator[bytes]: ...

    def get_file(self, key: str, dest: Path) -> ObjectInfo: ...

    def stat(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...


@runtime_checkable
class LocalStore(Protocol):
    """A store whose objects are files on a filesystem the runs can read directly.
    ``local_path(key)`` is the real path, already checked to stay inside the store."""

    def local_path(self, key: str) -> Path: ...


class ReleaseRepository(Protocol):
    """Stores release requests and their reviewers' votes. ``add`` inserts a new request;
    ``get`` returns it (times as aware UTC), or None for an unknown id; ``save`` writes
    everything of an existing request but its state; ``votes(request_id, round_)`` are the
    votes of that round, in the order they were cast.

    The state changes only through ``transition``, ``decide`` and ``finish_release``,
    each a compare-and-set on the state; an audit ``event`` given to them (or to ``add``) is
    written in the same transaction, and only if the write happened, so a move and its
    event happen together exactly once.

    The service's own steps (checks in SUBMITTED/CHECKING, the release in APPROVED) run
    under a work claim (``WorkClaim``: a token and an expiry): ``claim`` takes it when no
    live claim is held, ``waiting`` lists requests in the given states that nobody holds,
    ``postpone`` records a failed attempt and keeps others off until a retry time,
    ``unclaim`` drops it. A ``transition`` to a state outside ``CARRIED_ON`` drops any claim
    (the step is done). ``decide`` is IN_REVIEW -> the outcome with the decision time;
    ``finish_release`` is APPROVED -> RELEASED with the release time
    and crate, for the claim's holder only.

    ``add_vote`` raises ``Conflict`` for a second vote of the same reviewer on the same
    file in the same round. ``page`` lists, newest first, the requests ``flt`` selects that
    come after ``after``.

    ``add`` with ``open_limit`` raises ``Conflict`` (naming the limit) when the requester
    already has that many ``OPEN`` requests in the request's project; the count and the
    insert share one transaction, serialised with other adds (the SQL adapter appends the
    event first, under the audit chain's lock)."""

    def add(self, request: ReleaseRequest, event: AuditEvent | None = None,
            claim: WorkClaim | None = None, open_limit: int | None = None) -> None: ...

    def get(self, request_id: str) -> ReleaseRequest | None: ...

    def save(self, request: ReleaseRequest) -> None: ...

    def transition(self, request_id: str, from_states: frozenset[ReleaseState],
                   to: ReleaseState, event: AuditEvent | None = None) -> bool: ...

    def decide(self, request_id: str, outcome: ReleaseState, at: datetime,
               event: AuditEvent) -> bool: ...

    def claim(self, request_id: str, states: frozenset[ReleaseState], claim: WorkClaim,
              now: datetime) -> bool: ...

    def unclaim(self, request_id: str, token: str) -> None: ...

    def postpone(self, request_id: str, token: str, until: datetime, reason: str) -> bool: ...

    def finish_release(self, request_id: str, token: str, released_at: datetime,
                       crate: JSON, event: AuditEvent) -> bool: ...

    def waiting(self, states: frozenset[ReleaseState], now: datetime,
                limit: int) -> list[str]: ...

    def page(self, flt: ReleaseFilter, after: ReleaseCursor | None,
             limit: int) -> list[ReleaseRequest]: ...

    def add_vote(self, request_id: str, vote: Vote) -> None: ...

    def votes(self, request_id: str, round_: int) -> list[Vote]: ...


class JobFiles(Protocol):
    """The file work services do on a job's directory (``JobDir`` names its paths), so that
    no service opens, copies or removes a file itself.

    - ``copy_bundle`` replaces ``workflow/`` with a copy of ``bundle`` (no caches, no
      symlinks followed out) and creates ``logs/``.
    - ``bundle_digest`` hashes the copy in ``workflow/`` as ``spe.domain.catalog.
      bundle_digest`` does (what the run will execute, to compare with the allowlist).
    - ``write_params`` writes ``params.json``.
    - ``stage`` puts the object ``key`` of ``store`` at ``dest`` (creating its folder),
      read-only: linked when the store is a ``LocalStore`` (copied with ``copy``: a
      container sees no link target), else downloaded with its size verified.
      ``OSError`` when it cannot.
    - ``read`` opens a file of the job for reading (a context manager of a binary stream).
    - ``tail`` returns the last ``max_bytes`` of a file, or None when it is not a file.
    - ``exists`` says whether the job's directory exists.
    - ``touch_lease`` sets the start lease's time to ``at`` (seconds since the epoch);
      ``lease_time`` reads it back (None without a lease).
    - ``remove`` deletes the job's directory; False when there was none.
    """

    def copy_bundle(self, job: JobDir, bundle: Path) -> None: ...

    def bundle_digest(self, job: JobDir) -> str: ...

    def write_params(self, job: JobDir, params: JSON) -> None: ...

    def stage(self, store: ObjectStore, key: str, dest: Path, copy: bool = False) -> None: ...

    def read(self, path: Path) -> AbstractContextManager[BinaryIO]: ...

    def tail(self, path: Path, max_bytes: int) -> bytes | None: ...

    def exists(self, job: JobDir) -> bool: ...

    def touch_lease(self, job: JobDir, at: float) -> None: ...

    def lease_time(self, job: JobDir) -> float | None: ...

    def remove(self, job: JobDir) -> bool: ...


class TokenVerifier(Protocol):
    """``verify(token)`` returns the caller's Principal (``sub``: the token's subject). It
    raises ``Unauthenticated`` for a token that is malformed, forged, tampered with,
    expired or issued for another audience, and ``IdentityProviderUnavailable`` when the
    issuer cannot be reached. Tokens are never logged nor put in error messages."""

    def verify(self, token: str) -> Principal: ...


class Dispatcher(Protocol):
    """Hands work to workers. Messages carry run ids only; workers re-read state."""

    def enqueue(self, run_id: str) -> None: ...

    def enqueue_cancel(self, run_id: str) -> None: ...


class AuditLog(Protocol):
    """Append-only log of security events. ``append`` stores the event as given (its time,
    or now when it has none) after every earlier one, on a hash chain that verifies; an
    event that cannot be stored raises: ``append`` never fails silently."""

    def append(self, event: AuditEvent) -> None: ...
