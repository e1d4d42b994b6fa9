"""Small helpers the sections share: requests to enqueue, reads of a section's database, and
the formatting of figures in the printed table.

Product code is imported inside the functions, as everywhere in the benchmark, so that it
reads the environment of the section that calls it (see ``devtools.bench.run.Run``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def make_request(i: int, *, tag: str, frames: int = 30, users: int = 20) -> Any:
    """A small, valid request (720p, 1 s at 30 fps by default) spread over ``users`` users."""
    from shared.render_request import RenderRequest

    return RenderRequest(
        user_id=f"bench-user-{i % users}",
        generation_id=f"bench-{tag}-{i}",
        composition="Bench",
        input_props={"title": f"bench {i}"},
        width=1280,
        height=720,
        fps=30,
        duration_in_frames=frames,
    )


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def fetch_rows() -> list[dict[str, Any]]:
    """Every render of the section's database with the timestamps the figures need."""
    import sqlalchemy as sa

    from shared.db import get_engine
    from shared.models import Render

    table = Render.__table__  # type: ignore[attr-defined]
    names = (
        "id",
        "status",
        "error_code",
        "out_name",
        "lambda_render_id",
        "lambda_bucket",
        "created_at",
        "started_at",
        "completed_at",
        "last_polled_at",
    )
    with get_engine().connect() as conn:
        rows = conn.execute(sa.select(*(table.c[name] for name in names))).all()
    return [
        {
            "id": r[0],
            "status": str(r[1]),
            "error_code": r[2],
            "out_name": r[3],
            "lambda_render_id": r[4],
            "lambda_bucket": r[5],
            "created_at": _epoch(r[6]),
            "started_at": _epoch(r[7]),
            "completed_at": _epoch(r[8]),
            "last_polled_at": _epoch(r[9]),
        }
        for r in rows
    ]


def terminal_count() -> int:
    from shared import renders

    counts = renders.count_by_status()
    return counts.get("complete", 0) + counts.get("failed", 0)


def cpu_note(fig: dict[str, Any], unit: str) -> str:
    return (
        f"worker CPU {fig['worker_cpu_ms_per_unit']:.2f} ms/{unit}, "
        f"machine busy {fig['machine_busy_fraction']:.0%}"
    )


def fmt_rate(value: float | None, unit: str = "/s") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"
