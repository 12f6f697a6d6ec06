"""Review: the first half of the airlock. A run's owner asks for files of its quarantine
to leave (each file snapshotted by size and SHA-256), the automatic checks run, and
independent reviewers vote per file, blind until the request is decided. The vote that
completes the decision rule moves the request to APPROVED, REJECTED or RETURNED; the
release of an approved request is the outbox's step (``spe.services.outbox``), which
this service only nudges (``on_approved``, best-effort)."""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from spe.domain import airlock_checks as checks
from spe.domain.airlock import (
    DECIDED,
    Decision,
    ReleaseCursor,
    ReleaseFilter,
    ReleaseRequest,
    ReleaseState,
    RequestedFile,
    Vote,
    WorkClaim,
    can_move,
    consolidate,
)
from spe.domain.attachments import check_attachment_names
from spe.domain.errors import Conflict, DomainError, Forbidden, InvalidRequest, NotFound
from spe.domain.file_types import CandidateFile, sniff
from spe.domain.jobdir import LOG_PREFIX
from spe.domain.models import Page, Principal, Run
from spe.domain.paging import PageTokens
from spe.domain.permissions import allowed, is_member, member_projects
from spe.domain.ports import ObjectStore, RunRepository
from spe.domain.states import RunState, is_final
from spe.services.airlock import PREVIEW, REQUEST, REVIEW, ReleaseRequests, Zones
from spe.services.streams import Chunks, content_type, digest

S = ReleaseState
log = logging.getLogger(__name__)
HEAD_BYTES = 8192
MAX_PAGE_SIZE = 500
CHECKED = frozenset({S.SUBMITTED, S.CHECKING})
ROLES = ("", "requester", "reviewer")


@dataclass(frozen=True)
class Ballot:
    """The review of a request as one caller may see it."""

    votes: list[Vote]  # all of this round once decided, else only the caller's own
    reviewers_voted: int
    required_approvals: int
    can_review: bool


@dataclass(frozen=True)
class Preview:
    """The head of a file for its reviewers: the bytes, how they are served, the type the
    bytes show (``file_types.sniff``) and the whole file's size."""

    data: bytes
    content_type: str
    sniffed: str
    size: int


def _nothing(_request_id: str) -> None:
    return None


@dataclass
class Review:
    requests: ReleaseRequests
    runs: RunRepository
    zones: Zones
    tokens: PageTokens
    on_approved: Callable[[str], object] = _nothing
    preview_max_bytes: int = 5 * 2**20
    max_open: int = 20  # open requests of one requester in one project
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex)

    # -- reading -----------------------------------------------------------------------

    def get(self, who: Principal, request_id: str) -> ReleaseRequest:
        return self.requests.get(who, request_id)

    def listing(self, who: Principal, role: str = "", state: str = "", page_size: int = 100,
                page_token: str = "") -> Page[ReleaseRequest]:
        """One page, newest first, of the requests ``who`` may see (see ``_filter``)."""
        flt = self._filter(who, role, state)
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        after = self._cursor(page_token, flt.scope()) if page_token else None
        rows = self.requests.releases.page(flt, after, size + 1)
        items = rows[:size]
        if len(rows) <= size:
            return Page(items=items)
        last = ReleaseCursor(items[-1].created_at, items[-1].id)
        return Page(items=items, next_token=self.tokens.encode(last.text(), flt.scope()))

    def _filter(self, who: Principal, role: str, state: str) -> ReleaseFilter:
        """Own requests and those of the projects ``who`` reviews (global operators: all);
        ``requester``: only their own; ``reviewer``: only others' in projects they review."""
        if role not in ROLES:
            raise InvalidRequest(f"role must be one of {', '.join(ROLES[1:])}")
        try:
            wanted = S(state) if state else None
        except ValueError as exc:
            raise InvalidRequest(f"{state[:32]!r} is not a release request state") from exc
        access = self.requests.gate.access(who)
        reviewing = tuple(sorted(p for p in access.projects
                                 if "reviewer" in access.roles_in(p)))
        member_of = member_projects(access)  # an ex-member's old requests are not theirs
        if role == "requester":
            return ReleaseFilter(sub=who.sub, state=wanted, member_of=member_of)
        if role == "reviewer":
            return ReleaseFilter(sub=who.sub, own=False, projects=reviewing, not_own=True,
                                 state=wanted)
        return ReleaseFilter(sub=who.sub, projects=reviewing, everything=access.is_operator,
                             state=wanted, member_of=member_of)

    def _cursor(self, page_token: str, scope: str) -> ReleaseCursor:
        text = self.tokens.decode_text(page_token, scope)
        try:
            return ReleaseCursor.parse(text)
        except ValueError as exc:
            raise InvalidRequest("page_token is not valid for this listing") from exc

    def ballot(self, who: Principal, req: ReleaseRequest) -> Ballot:
        """Blind review: before the decision a caller sees only their own votes."""
        votes = self.requests.releases.votes(req.id, req.round)
        shown = votes if req.state in DECIDED else [v for v in votes
                                                    if v.reviewer_sub == who.sub]
        return Ballot(votes=shown, reviewers_voted=len({v.reviewer_sub for v in votes}),
                      required_approvals=self.requests.settings(req.project).required_approvals,
                      can_review=self.can_review(who, req))

    def findings(self, who: Principal, req: ReleaseRequest) -> list[dict[str, object]]:
        """The check findings as ``who`` may see them: the values of flagged cells only
        for the project's reviewers (never the requester); everyone else sees where."""
        if self.sees_values(who, req):
            return req.findings
        return checks.without_values(req.findings)

    def sees_values(self, who: Principal, req: ReleaseRequest) -> bool:
        return (req.requester_sub != who.sub
                and allowed(self.requests.gate.access(who), REVIEW,
                            self.requests.resource(req)))

    def can_review(self, who: Principal, req: ReleaseRequest) -> bool:
        return (req.state == S.IN_REVIEW and req.requester_sub != who.sub
                and allowed(self.requests.gate.access(who), REVIEW,
                            self.requests.resource(req)))

    def preview(self, who: Principal, request_id: str, path: str) -> Preview:
        """The first ``preview_max_bytes`` of a quarantined file, for its reviewers, with
        the type its bytes show and its whole size."""
        req = self.requests.get(who, request_id, PREVIEW)
        if req.requester_sub == who.sub:
            raise Forbidden("a requester never reviews their own request", rule="independence")
        if req.state != S.IN_REVIEW:
            raise Conflict(f"release request {req.id} is {req.state.value}")
        if path not in {f.path for f in req.files}:
            raise NotFound(f"{path[:200]!r} is not a file of this request")
        data = b""
        for chunk in self.zones.quarantine(req.project).get(f"{req.run_id}/{path}"):
            data += chunk
            if len(data) >= self.preview_max_bytes:
                break
        self.requests.audit("release.preview", who, "granted", req.id, {"path": path})
        size = next(f.size for f in req.files if f.path == path)
        return Preview(data=data[:self.preview_max_bytes], content_type=content_type(path, data),
                       sniffed=sniff(data[:HEAD_BYTES]), size=size)

    # -- submitting --------------------------------------------------------------------

    def create(self, who: Principal, run_id: str, paths: list[str],
               justification: str) -> ReleaseRequest:
        run = self.requests.gate.check_run(who, self.runs.get(run_id), REQUEST, run_id)
        _check_releasable(run, paths)
        files = self._snapshot(run, paths)
        req = ReleaseRequest(id=self.new_id(), run_id=run.id, project=run.project,
                             requester_sub=who.sub, requester_name=who.username,
                             justification=justification, state=S.SUBMITTED, files=files,
                             created_at=self.requests.clock())
        claim = self.requests.new_claim()
        self.requests.releases.add(req, self.requests.event(
            "release.submit", who, "submitted", req.id,
            {"run": run.id, "files": [f.path for f in files]}), claim, open_limit=self.max_open)
        return self._check(req, claim)

    def _snapshot(self, run: Run, paths: list[str]) -> list[RequestedFile]:
        """Each path must be an output of the run; its bytes are hashed now."""
        try:
            check_attachment_names(paths)
        except InvalidRequest as exc:
            raise InvalidRequest("the file list is not safe", [
                (p.replace("/workflow_attachment", "/files"), m) for p, m in exc.errors]) from exc
        store = self.zones.quarantine(run.project)
        outputs = {o.path for o in run.outputs} | self._logs_of(store, run.id)
        unknown = [p for p in paths if p not in outputs]
        if unknown:
            raise InvalidRequest("only outputs of the run can be released",
                                 [(f"/files/{paths.index(p)}", f"{p[:200]!r} is not an "
                                   "output of the run") for p in unknown])
        files = []
        for path in paths:
            size, sha = digest(store.get(f"{run.id}/{path}"))
            files.append(RequestedFile(path=path, size=size, sha256=sha))
        return files

    @staticmethod
    def _logs_of(store: ObjectStore, run_id: str) -> set[str]:
        """The logs kept in the run's quarantine (``_logs/stdout.txt``, a task's
        ``_logs/executor-0-stdout.txt``, ...)."""
        start = len(run_id) + 1
        return {info.key[start:] for info in store.list(f"{run_id}/{LOG_PREFIX}")}

    def resume_checks(self, request_id: str) -> ReleaseRequest | None:
        """Carry on a request left in SUBMITTED or CHECKING (a crash, a failed attempt):
        run its checks again. None if someone else holds it or it has moved on."""
        claim = self.requests.claim(request_id, CHECKED)
        if claim is None:
            return None
        return self._check(self.requests.fresh(request_id), claim)

    def _check(self, req: ReleaseRequest, claim: WorkClaim) -> ReleaseRequest:
        """SUBMITTED -> CHECKING -> IN_REVIEW | BLOCKED, under ``claim``; safe to repeat."""
        with self.requests.holding(req.id, claim, "the checks could not run"):
            self.requests.move(req.id, S.SUBMITTED, S.CHECKING)  # not if CHECKING already
            store = self.zones.quarantine(req.project)
            candidates = [_candidate(store, req.run_id, f) for f in req.files]
            findings = checks.run_checks(candidates, self.requests.settings(req.project))
            hard = checks.blocking(findings)
            req.findings = [asdict(f) for f in findings]
            req.reason = "; ".join(f"{f.path or 'request'}: {f.message}" for f in hard)[:4000]
            self.requests.releases.save(req)
            target = S.BLOCKED if hard else S.IN_REVIEW
            self.requests.move(req.id, S.CHECKING, target, self.requests.event(
                "release.checks", None, target.value.lower(), req.id,
                {"hard_failures": len(hard)}))
        return self.requests.fresh(req.id)

    def resubmit(self, who: Principal, request_id: str) -> ReleaseRequest:
        """RETURNED -> SUBMITTED with the files snapshotted again and the next round, then
        the checks; all under the request's work claim."""
        req = self._own(who, request_id, S.RETURNED)
        run = self.runs.get(req.run_id)
        if run is None:
            raise Conflict("the run of this request is gone")
        files = self._snapshot(run, [f.path for f in req.files])
        claim = self._claim_returned(req.id)
        try:
            req.files, req.round, req.reason, req.decided_at = files, req.round + 1, "", None
            self.requests.releases.save(req)
            moved = self.requests.move(req.id, S.RETURNED, S.SUBMITTED, self.requests.event(
                "release.resubmit", who, "submitted", req.id, {"round": req.round}))
        except Exception:
            self.requests.releases.unclaim(req.id, claim.token)
            raise
        if not moved:
            self.requests.releases.unclaim(req.id, claim.token)
            raise Conflict(f"release request {req.id} is no longer RETURNED")
        return self._check(req, claim)

    def withdraw(self, who: Principal, request_id: str) -> ReleaseRequest:
        req = self._own(who, request_id, S.RETURNED)
        claim = self._claim_returned(req.id)
        if not self.requests.move(req.id, S.RETURNED, S.WITHDRAWN, self.requests.event(
                "release.withdraw", who, "withdrawn", req.id, {})):
            self.requests.releases.unclaim(req.id, claim.token)
            raise Conflict(f"release request {req.id} is no longer RETURNED")
        return self.requests.fresh(req.id)

    def _claim_returned(self, request_id: str) -> WorkClaim:
        """A resubmit and a withdraw of the same request never overlap."""
        claim = self.requests.claim(request_id, frozenset({S.RETURNED}))
        if claim is None:
            raise Conflict(f"release request {request_id} is no longer RETURNED, or is "
                           "being changed")
        return claim

    def _own(self, who: Principal, request_id: str, state: ReleaseState) -> ReleaseRequest:
        """The caller's own request, while they are a member of its project (a requester
        who left it but reads it as a reviewer may not act as its requester)."""
        req = self.requests.get(who, request_id)
        if req.requester_sub != who.sub \
                or not is_member(self.requests.gate.access(who), req.project):
            raise Forbidden("only the requester may do this", rule="requester")
        if req.state != state:
            raise Conflict(f"release request {req.id} is {req.state.value}")
        return req

    # -- votes and the decision ------------------------------------------------------------

    def vote(self, who: Principal, request_id: str, path: str, decision: str,
             reason: str) -> ReleaseRequest:
        req = self.requests.get(who, request_id)
        if req.requester_sub == who.sub:
            self.requests.audit("release.vote", who, "denied", req.id,
                                {"reason": "self-approval"})
            raise Forbidden("a requester never reviews their own request", rule="independence")
        req = self.requests.get(who, request_id, REVIEW)
        if req.state != S.IN_REVIEW:
            self.requests.audit("release.vote", who, "denied", req.id, {"reason": "decided"})
            raise Conflict(f"release request {req.id} is {req.state.value}: no more votes")
        if path not in {f.path for f in req.files}:
            raise InvalidRequest("not a file of this request", [("/path", path[:200])])
        try:
            self.requests.releases.add_vote(req.id, Vote(
                reviewer_sub=who.sub, reviewer_name=who.username, path=path,
                decision=Decision(decision), reason=reason.strip(),
                at=self.requests.clock(), round=req.round))
        except DomainError:
            self.requests.audit("release.vote", who, "denied", req.id,
                                {"reason": "second vote"})
            raise
        self.requests.audit("release.vote", who, "recorded", req.id,
                            {"path": path, "round": req.round})
        return self._decide(req)

    def _decide(self, req: ReleaseRequest) -> ReleaseRequest:
        """IN_REVIEW -> the outcome once the rule decides (one vote wins the move). An
        approval only nudges the release; the reconciler carries it on in any case."""
        required = self.requests.settings(req.project).required_approvals
        outcome = consolidate(req.files, self.requests.releases.votes(req.id, req.round),
                              required)
        if outcome is None:
            return req
        if not can_move(S.IN_REVIEW, outcome):
            raise RuntimeError(f"release requests never move IN_REVIEW -> {outcome}")
        decided = self.requests.releases.decide(
            req.id, outcome, self.requests.clock(),
            self.requests.event("release.decide", None, outcome.value.lower(), req.id, {}))
        if decided and outcome == S.APPROVED:
            self._nudge(req.id)
        return self.requests.fresh(req.id)

    def _nudge(self, request_id: str) -> None:
        try:
            self.on_approved(request_id)
        except Exception:  # best-effort: the reconciler releases it anyway
            log.exception("could not start the release of request %s", request_id)


def _check_releasable(run: Run, paths: list[str]) -> None:
    """Outputs leave from a completed, unpurged run; the engine's logs from any run that
    has ended (a failed run's log is what its owner needs), unpurged."""
    logs_only = bool(paths) and all(p.startswith(LOG_PREFIX) for p in paths)
    if run.purged_at is None and (run.state == RunState.COMPLETE
                                  or (logs_only and is_final(run.state))):
        return
    raise Conflict(f"run {run.id} is {run.state.value}"
                   f"{' and purged' if run.purged_at else ''}: only the outputs of a "
                   "completed, unpurged run can be released (the engine's logs of any "
                   "ended, unpurged run)")


def _candidate(store: ObjectStore, run_id: str, f: RequestedFile) -> CandidateFile:
    """What the checks see of one file: its size, first 8 KiB, all its bytes (streamed)
    and, for tables, rows."""
    key = f"{run_id}/{f.path}"
    head = b""
    for chunk in store.get(key):
        head += chunk
        if len(head) >= HEAD_BYTES:
            break
    lower = f.path.lower()
    delimiter = "\t" if lower.endswith(".tsv") else ","

    def rows() -> Iterator[list[str]]:
        text = io.TextIOWrapper(io.BufferedReader(Chunks(store.get(key))), encoding="utf-8",
                                errors="replace", newline="")
        yield from csv.reader(text, delimiter=delimiter)

    def chunks() -> Iterator[bytes]:
        yield from store.get(key)

    is_table = lower.endswith((".csv", ".tsv"))
    return CandidateFile(path=f.path, size=f.size, head=head[:HEAD_BYTES],
                                text_rows=rows if is_table else None, chunks=chunks)
