"""Controllers of the airlock under /spe/v1/release-requests (spe/openapi/spe.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flask

from spe.api import context
from spe.api.shapes import iso
from spe.domain.airlock import ReleaseRequest
from spe.domain.errors import NotFound
from spe.domain.models import Principal
from spe.services.outbox import Outbox
from spe.services.review import Review
from spe.services.review_context import ReviewContext

Body = dict[str, Any]
SAFE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Referrer-Policy": "no-referrer"}


@dataclass
class AirlockApi:
    review: Review
    outbox: Outbox
    reviewing: ReviewContext | None = None

    def _shape(self, who: Principal, req: ReleaseRequest) -> Body:
        ballot = self.review.ballot(who, req)
        body: Body = {
            "id": req.id, "run_id": req.run_id, "project": req.project,
            "requester": req.requester_name, "state": req.state.value,
            "justification": req.justification, "round": req.round, "reason": req.reason,
            "required_approvals": ballot.required_approvals,
            "reviewers_voted": ballot.reviewers_voted,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256}
                      for f in req.files],
            "findings": self.review.findings(who, req),
            "votes": [{"reviewer": v.reviewer_name, "path": v.path,
                       "decision": v.decision.value, "reason": v.reason, "at": iso(v.at)}
                      for v in ballot.votes],
            "can_review": ballot.can_review,
        }
        for name in ("created_at", "decided_at", "released_at", "revoked_at"):
            value = iso(getattr(req, name))
            if value:
                body[name] = value
        return body

    def list_release_requests(self, state: str = "", role: str = "", page_size: int = 100,
                              page_token: str = "") -> Body:
        who = context.principal()
        page = self.review.listing(who, role, state, page_size, page_token)
        return {"requests": [self._shape(who, r) for r in page.items],
                "next_page_token": page.next_token}

    def create_release_request(self, body: Body) -> tuple[Body, int]:
        who = context.principal()
        req = self.review.create(who, body["run_id"], list(body["files"]),
                                  body["justification"])
        return self._shape(who, req), 201

    def get_release_request(self, request_id: str) -> Body:
        who = context.principal()
        return self._shape(who, self.review.get(who, request_id))

    def vote_on_release_request(self, request_id: str, body: Body) -> Body:
        who = context.principal()
        req = self.review.vote(who, request_id, body["path"], body["decision"],
                                body["reason"])
        return self._shape(who, req)

    def resubmit_release_request(self, request_id: str) -> Body:
        who = context.principal()
        return self._shape(who, self.review.resubmit(who, request_id))

    def withdraw_release_request(self, request_id: str) -> Body:
        who = context.principal()
        return self._shape(who, self.review.withdraw(who, request_id))

    def revoke_release_request(self, request_id: str) -> Body:
        who = context.principal()
        return self._shape(who, self.outbox.revoke(who, request_id))

    def preview_release_file(self, request_id: str, path: str) -> flask.Response:
        preview = self.review.preview(context.principal(), request_id, path)
        inline = preview.content_type != "application/octet-stream"
        return flask.Response(preview.data, status=200, content_type=preview.content_type,
                              headers={**SAFE_HEADERS,
                                       "Content-Disposition": "inline" if inline
                                       else "attachment",
                                       "X-SPE-Sniffed-Type": preview.sniffed,
                                       "X-SPE-File-Size": str(preview.size)})

    def download_released_file(self, request_id: str, path: str) -> flask.Response:
        chunks = self.outbox.download(context.principal(), request_id, path)
        name = path.rsplit("/", 1)[-1].replace('"', "")
        return flask.Response(chunks, status=200, content_type="application/octet-stream",
                              headers={**SAFE_HEADERS,
                                       "Content-Disposition": f'attachment; filename="{name}"'})

    def get_release_context(self, request_id: str) -> Body:
        if self.reviewing is None:
            raise NotFound("the review context is not served here")
        return self.reviewing.context(context.principal(), request_id)

    def get_release_crate(self, request_id: str) -> Body:
        return self.outbox.crate(context.principal(), request_id)
