"""What the console's pages show, read from the database and Redis; no HTTP here.

The overview is ``scripts.status.collect_status`` (the same numbers as ``python -m
scripts.status``) plus the hour's throughput and failure rate; a render's page gathers its
row, timeline, notifications, audit entries and any pause holding it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import load_only
from sqlmodel import Session, col, or_, select

from scripts.status import collect_status
from shared import audit, outputs, pauses, renders, timeline
from shared.access_models import AuditEntry, TimelineEntry
from shared.db import get_engine
from shared.log import get_logger
from shared.models import Render, RenderEvent, RenderStatus
from shared.pauses import Pause

log = get_logger(__name__)

PAGE_SIZE = 50
#: The columns a search result shows (``input_props`` alone may be 64 KiB a row).
_LIST_COLUMNS: tuple[Any, ...] = (
    Render.id,
    Render.user_id,
    Render.generation_id,
    Render.status,
    Render.progress,
    Render.composition,
    Render.error_code,
    Render.attempts,
    Render.created_at,
    Render.completed_at,
)


def overview() -> dict[str, Any]:
    """The status document, plus the last hour's throughput and failure rate."""
    doc = collect_status(limit=50)
    failed = sum(doc["failures_last_hour"].values())
    completed = doc["completed_last_hour"]
    ended = failed + completed
    doc["throughput"] = {
        "completed_last_hour": completed,
        "failed_last_hour": failed,
        "per_minute": round(completed / 60, 2),
        "failure_rate": round(failed / ended, 4) if ended else 0.0,
    }
    return doc


# --- search -----------------------------------------------------------------------------------


@dataclass
class Search:
    """The search form's fields; empty strings mean "any"."""

    render_id: str = ""
    user_id: str = ""
    generation_id: str = ""
    status: str = ""
    error_code: str = ""
    since: datetime | None = None
    until: datetime | None = None
    #: Keyset cursor: ``<created_at iso>|<id>`` of the last row of the previous page.
    before: str = ""

    def query_string(self, **changes: str) -> str:
        from urllib.parse import urlencode

        values = {
            "render_id": self.render_id,
            "user_id": self.user_id,
            "generation_id": self.generation_id,
            "status": self.status,
            "error_code": self.error_code,
            "since": self.since.strftime("%Y-%m-%dT%H:%M") if self.since else "",
            "until": self.until.strftime("%Y-%m-%dT%H:%M") if self.until else "",
            "before": self.before,
            **changes,
        }
        return urlencode({k: v for k, v in values.items() if v})


@dataclass
class Page:
    rows: list[Render] = field(default_factory=list)
    next_before: str | None = None


def parse_time(value: str | None) -> datetime | None:
    """A ``datetime-local`` field (or ISO 8601), read as UTC; None when empty or malformed."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def search(form: Search, limit: int = PAGE_SIZE) -> Page:
    """Newest first, ``limit`` a page. Each filter maps to an index: user -> (user_id,
    created_at), generation -> (generation_id, created_at), status -> (status, created_at),
    none -> (created_at) (migration 0008); the id is the primary key."""
    stmt = select(Render).options(load_only(*_LIST_COLUMNS))
    if form.render_id:
        stmt = stmt.where(Render.id == form.render_id.strip())
    if form.user_id:
        stmt = stmt.where(Render.user_id == form.user_id.strip())
    if form.generation_id:
        stmt = stmt.where(Render.generation_id == form.generation_id.strip())
    if form.status in {s.value for s in RenderStatus}:
        stmt = stmt.where(Render.status == RenderStatus(form.status))
    if form.error_code:
        stmt = stmt.where(Render.error_code == form.error_code.strip())
    if form.since:
        stmt = stmt.where(col(Render.created_at) >= form.since)
    if form.until:
        stmt = stmt.where(col(Render.created_at) < form.until)
    if form.before and "|" in form.before:
        at_text, last_id = form.before.rsplit("|", 1)
        at = parse_time(at_text)
        if at is not None:
            stmt = stmt.where(
                or_(
                    col(Render.created_at) < at,
                    (col(Render.created_at) == at) & (col(Render.id) < last_id),
                )
            )
    stmt = stmt.order_by(col(Render.created_at).desc(), col(Render.id).desc()).limit(limit + 1)
    with Session(get_engine()) as session:
        rows = list(session.exec(stmt))
    page = Page(rows=rows[:limit])
    if len(rows) > limit:
        last = rows[limit - 1]
        created = last.created_at if last.created_at.tzinfo else last.created_at.replace(tzinfo=UTC)
        page.next_before = f"{created.isoformat()}|{last.id}"
    return page


# --- one render -------------------------------------------------------------------------------


@dataclass
class RenderPage:
    render: Render
    #: The row's own times and the timeline's steps, oldest first: (at, kind, detail).
    steps: list[tuple[datetime, str, dict[str, Any]]]
    events: list[RenderEvent]
    audit: list[AuditEntry]
    output_link: str | None
    #: The pause holding this pending render back, if any; ``held`` once the worker parked it.
    pause: Pause | None
    held: bool


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _steps(
    render: Render, entries: list[TimelineEntry]
) -> list[tuple[datetime, str, dict[str, Any]]]:
    steps = [(_aware(e.at), e.kind, dict(e.detail or {})) for e in entries]
    kinds = {kind for _, kind, _ in steps}
    own: list[tuple[datetime | None, str]] = [
        (render.created_at, "created"),
        (render.started_at, "started"),
        (render.completed_at, str(render.status) if render.status.terminal else "completed"),
    ]
    for at, kind in own:
        if at is not None and kind not in kinds:
            steps.append((_aware(at), kind, {"from": "the render row"}))
    return sorted(steps, key=lambda s: s[0])


def render_page(render_id: str) -> RenderPage | None:
    render = renders.get(render_id)
    if render is None:
        return None
    with Session(get_engine()) as session:
        events = list(
            session.exec(
                select(RenderEvent)
                .where(RenderEvent.render_id == render_id)
                .order_by(col(RenderEvent.created_at))
            )
        )
    link = None
    try:
        link = outputs.download_url(render)
    except Exception as exc:  # a link is a convenience: the page still shows the render
        log.warning("could not make the output link", render_id=render_id, error=str(exc))
    pause = held = None
    if render.status == RenderStatus.PENDING:
        pause = pauses.pause_for(render.user_id)
        held = pauses.is_held(render_id)
    return RenderPage(
        render=render,
        steps=_steps(render, timeline.entries(render_id)),
        events=events,
        audit=audit.recent(target=f"render:{render_id}", limit=100),
        output_link=link,
        pause=pause,
        held=bool(held),
    )


def render_feed(render: Render) -> dict[str, Any]:
    """What the render page refreshes in place."""
    pause = pauses.pause_for(render.user_id) if render.status == RenderStatus.PENDING else None
    return {
        "id": render.id,
        "status": str(render.status),
        "progress": round(float(render.progress), 4),
        "attempts": render.attempts,
        "error_code": render.error_code,
        "paused": pause.describe() if pause else None,
    }
