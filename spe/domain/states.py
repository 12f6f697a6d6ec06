"""Run states (GA4GH WES 1.1 ``State``) and the literal transition table."""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    UNKNOWN = "UNKNOWN"
    QUEUED = "QUEUED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETE = "COMPLETE"
    EXECUTOR_ERROR = "EXECUTOR_ERROR"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    CANCELED = "CANCELED"
    CANCELING = "CANCELING"
    PREEMPTED = "PREEMPTED"


S = RunState

FINAL_STATES: frozenset[RunState] = frozenset(
    {S.COMPLETE, S.EXECUTOR_ERROR, S.SYSTEM_ERROR, S.CANCELED, S.PREEMPTED}
)

# from-state -> the states it may move to. Final states have no way out.
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    S.QUEUED: frozenset({S.INITIALIZING, S.CANCELING, S.CANCELED, S.SYSTEM_ERROR}),
    # INITIALIZING -> QUEUED: recovery found a run that never reached its executor
    S.INITIALIZING: frozenset({S.QUEUED, S.RUNNING, S.CANCELING, S.SYSTEM_ERROR,
                               S.EXECUTOR_ERROR, S.COMPLETE, S.PREEMPTED}),
    # RUNNING <-> PAUSED: the scheduler suspended the job and resumed it
    S.RUNNING: frozenset({S.COMPLETE, S.EXECUTOR_ERROR, S.SYSTEM_ERROR, S.CANCELING,
                          S.PREEMPTED, S.PAUSED}),
    S.PAUSED: frozenset({S.RUNNING, S.CANCELING, S.SYSTEM_ERROR, S.COMPLETE,
                         S.EXECUTOR_ERROR, S.PREEMPTED}),
    S.CANCELING: frozenset({S.CANCELED, S.SYSTEM_ERROR}),
    S.UNKNOWN: frozenset({S.SYSTEM_ERROR}),
    S.COMPLETE: frozenset(),
    S.EXECUTOR_ERROR: frozenset(),
    S.SYSTEM_ERROR: frozenset(),
    S.CANCELED: frozenset(),
    S.PREEMPTED: frozenset(),
}


def can_move(current: RunState, target: RunState) -> bool:
    """True when ``current -> target`` is in the table (staying put is always allowed)."""
    return current == target or target in TRANSITIONS[current]


def is_final(state: RunState) -> bool:
    return state in FINAL_STATES
