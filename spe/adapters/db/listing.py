"""The queries of a listing page (``RunRepository.page`` and ``summaries``): each one a
keyset walk of one index, newest first, chosen here rather than by the database's planner
(SQLite plans without statistics: the service never runs ANALYZE)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select, true
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op

from spe.adapters.db.tables import RunRow, RunTagRow
from spe.domain.models import RunFilter, Visibility

# A listing filtered by a tag walks that tag's runs newest first (``run_tags (key, value,
# run_seq)``) through at most this many of them; if the page is not full by then (the tag is
# common among other callers' runs), it goes on by walking the caller's own runs below them.
# SQLite plans without statistics (the service never runs ANALYZE), so the walk is chosen
# here, not by it.
TAG_WINDOW = 1000
# When it was not full, the rest of the page walks whichever of the tag's runs and the
# caller's own has fewer left, each counted up to this many.
WALK_COUNT_CAP = 10_000


def visible_runs(visible: Visibility, plain: Callable[[Any], Any] | None = None
                 ) -> ColumnElement[bool]:
    """The runs ``visible`` shows; ``plain`` wraps the owner and project columns (``_plain``
    for those SQLite's planner is not to reach through an index)."""
    if visible.everything:
        return true()
    col = plain or (lambda column: column)
    own = and_(col(RunRow.owner_sub) == visible.owner_sub,
               col(RunRow.project).in_(visible.member_of)) if visible.member_of else false()
    return or_(own, col(RunRow.project).in_(visible.projects)) if visible.projects else own


def _plain(column: Any) -> Any:
    """``column`` behind SQLite's no-op unary ``+``, which keeps its planner from reaching
    it through an index: without statistics it would otherwise take the ``kind`` or
    ``project`` index, shared by every caller, over the caller's own."""
    return UnaryExpression(column, operator=custom_op("+"), type_=column.type)


def _tag_value(table: Any, value: str | None) -> list[ColumnElement[bool]]:
    """A tag filter's value: None matches any value of the key."""
    return [] if value is None else [table.value == value]


@dataclass(frozen=True)
class Listing:
    """The queries of a listing page (``page``, ``summaries``), each a keyset walk of one
    index, newest first, stopping at the page's end:

    - with a tag of a given value (the rarest, when several are): that tag's runs
      (``run_tags (key, value, run_seq)``), each run fetched by its primary key and
      checked against the other filters, through the newest ``window`` of them; if the
      page is not full by then, on down the tag's runs or down the caller's own runs,
      whichever has fewer left (counted up to ``cap``). A tag no run carries costs two
      index probes;
    - otherwise the caller's runs (``runs (owner_sub, kind, seq)``, or ``(owner_sub, kind,
      state, seq)`` for one state), every tag checked by a primary-key probe of
      ``run_tags``.

    That is SQLite's plan, which the repository must choose for it. On PostgreSQL a tag
    listing is the first walk alone, without the window: one join of the tag's runs to
    ``runs``, newest first, whose plan its statistics choose (a backward walk of the tag
    index stopping at the page's end, or the caller's runs); a window's floor made it
    sort every run of a common tag first.

    The visibility rules are the same conditions whichever walk is taken."""

    sqlite: bool  # steer SQLite's planner, which has no statistics (``_plain``)
    window: int
    cap: int
    scalar: Callable[[Select[Any]], Any]
    run: Callable[[Select[Any]], list[Any]]

    def rows(self, head: Select[Any], visible: Visibility, flt: RunFilter,
             before_seq: int | None, limit: int) -> list[Any]:
        valued = [(k, v) for k, v in flt.tags if v is not None]
        if not valued:
            return self.run(self._runs_walk(head, visible, flt, before_seq, limit))
        if not self.sqlite:  # PostgreSQL's statistics choose the walk of a tag listing
            key, value = valued[0]
            return self.run(self._tag_walk(head, visible, flt, key, value,
                                           before_seq=before_seq, floor=None, limit=limit))
        key, value = min(valued, key=lambda tag: self._count(
            _tag_rows(tag[0], tag[1], before_seq), self.window)) if len(valued) > 1 \
            else valued[0]
        floor = _tag_rows(key, value, before_seq).order_by(RunTagRow.run_seq.desc()) \
            .limit(1).offset(self.window - 1)  # the window's last run, if it is full
        rows = self.run(self._tag_walk(head, visible, flt, key, value,
                                       before_seq=before_seq, floor=floor, limit=limit))
        if len(rows) >= limit:
            return rows
        below = self.scalar(floor)
        if below is None:
            return rows  # every run of the tag below ``before_seq`` was examined
        rest = limit - len(rows)
        if self._tag_has_fewer(visible, flt, key, value, below):
            return rows + self.run(self._tag_walk(head, visible, flt, key, value,
                                                  before_seq=below, floor=None, limit=rest))
        return rows + self.run(self._runs_walk(head, visible, flt, below, rest))

    def _count(self, query: Select[Any], cap: int) -> int:
        return int(self.scalar(select(func.count()).select_from(
            query.limit(cap).subquery())) or 0)

    def _tag_has_fewer(self, visible: Visibility, flt: RunFilter, key: str, value: str,
                       below: int) -> bool:
        """Whether fewer runs below ``below`` carry the tag than the caller owns (of the
        listing's kind): those are the two walks left. Any other caller's walk goes
        through everyone's runs, so the tag's are fewer."""
        if visible.everything or visible.projects:
            return True
        own = select(RunRow.seq).where(RunRow.owner_sub == visible.owner_sub,
                                       RunRow.seq < below)
        if flt.kind:
            own = own.where(RunRow.kind == flt.kind)
        return self._count(_tag_rows(key, value, below), self.cap) < self._count(own, self.cap)

    def _tag_walk(self, head: Select[Any], visible: Visibility, flt: RunFilter, key: str,
                  value: str, *, before_seq: int | None, floor: Select[Any] | None,
                  limit: int) -> Select[Any]:
        query = head.join(RunTagRow, RunTagRow.run_seq == RunRow.seq).where(
            RunTagRow.key == key, RunTagRow.value == value)
        if before_seq is not None:
            query = query.where(RunTagRow.run_seq < before_seq)
        if floor is not None:  # the walk stops at the window's end (none if not full)
            query = query.where(RunTagRow.run_seq >= func.coalesce(floor.scalar_subquery(),
                                                                   0))
        others = list(flt.tags)
        others.remove((key, value))
        indexed = frozenset[str]() if self.sqlite else None  # the walk is run_tags'
        query = query.where(*_run_conditions(visible, flt, None, indexed),
                            *_tag_conditions(others))
        return query.order_by(RunTagRow.run_seq.desc()).limit(limit)

    def _runs_walk(self, head: Select[Any], visible: Visibility, flt: RunFilter,
                   before_seq: int | None, limit: int) -> Select[Any]:
        indexed = None  # the planner's choice, except for SQLite on the caller's own runs
        if self.sqlite and not visible.everything and not visible.projects:
            indexed = frozenset({"owner_sub", "kind", "state"} if len(flt.states) == 1
                                else {"owner_sub", "kind"})
        query = head.where(*_run_conditions(visible, flt, before_seq, indexed),
                           *_tag_conditions(list(flt.tags)))
        return query.order_by(RunRow.seq.desc()).limit(limit)


def _tag_rows(key: str, value: str, before_seq: int | None) -> Select[Any]:
    """The runs carrying a tag below ``before_seq``, from ``run_tags (key, value,
    run_seq)`` alone."""
    query = select(RunTagRow.run_seq).where(RunTagRow.key == key, RunTagRow.value == value)
    return query if before_seq is None else query.where(RunTagRow.run_seq < before_seq)


def _run_conditions(visible: Visibility, flt: RunFilter, before_seq: int | None,
                    indexed: frozenset[str] | None) -> list[ColumnElement[bool]]:
    """The conditions on ``runs`` of a listing. ``indexed``: the columns SQLite's planner
    may reach through an index, the others behind ``_plain`` (None: all of them)."""
    def col(column: Any) -> Any:
        return column if indexed is None or column.key in indexed else _plain(column)

    where = [visible_runs(visible, col)]
    if before_seq is not None:
        where.append(RunRow.seq < before_seq)
    if flt.kind:
        where.append(col(RunRow.kind) == flt.kind)
    if flt.name_prefix:
        where.append(RunRow.name.startswith(flt.name_prefix, autoescape=True))
    if flt.states:
        where.append(col(RunRow.state).in_([s.value for s in flt.states]))
    if flt.workflow:
        workflow_id, _, version = flt.workflow.partition("@")
        where.append(col(RunRow.workflow_id) == workflow_id)
        if version:
            where.append(col(RunRow.workflow_version) == version)
    return where


def _tag_conditions(tags: list[tuple[str, str | None]]) -> list[ColumnElement[bool]]:
    """Each tag as a primary-key probe of ``run_tags`` (run_seq, key); a value of None
    matches any value of the key."""
    where: list[ColumnElement[bool]] = []
    for key, value in tags:
        other = aliased(RunTagRow)
        where.append(exists().where(other.run_seq == RunRow.seq, other.key == key,
                                    *_tag_value(other, value)))
    return where
