"""The hot statements find their rows by primary key on PostgreSQL, whatever the statistics say.

The table's normal state is "almost everything finished", and PostgreSQL's statistics say so.
A burst of new renders then makes ``pending`` (later ``rendering``) common while the planner
still believes it rare; a ``status = :s`` guard then looks cheapest through a ``(status, ...)``
index, and every claim scans the whole backlog. A table that was never analyzed (a fresh
database taking its first burst) is planned the same way. The control case below shows that
this really happens on the server under test, in both states, so the main checks cannot pass
by accident.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col

from devtools.devstack import scratch_database
from devtools.migrate import upgrade_head
from shared import db
from shared.models import Render, RenderStatus, utcnow
from shared.repository import polls, starts
from shared.repository import table as table_module

HISTORY = 30_000
BURST = 1_500


_COLUMNS = (
    "id, user_id, generation_id, status, progress, composition, input_props, width, height, "
    "fps, duration_in_frames, codec, error_history, attempts, start_requests, poll_failures, "
    "created_at, updated_at"
)


def _insert(conn: sa.Connection, prefix: str, count: int) -> None:
    conn.exec_driver_sql(
        f"INSERT INTO render ({_COLUMNS}) "
        f"SELECT '{prefix}' || n, 'user-' || (n %% 50), 'g', 'pending', 0, 'Main', '{{}}', "
        "1280, 720, 30, 30, 'h264', '[]', 1, 0, 0, now(), now() "
        f"FROM generate_series(0, {count - 1}) AS n"
    )


@pytest.fixture(scope="module", params=["analyzed_history", "never_analyzed"])
def engine(request: pytest.FixtureRequest, pg_server_url: str) -> Iterator[sa.Engine]:
    """A database of its own. ``analyzed_history``: finished history, analyzed, then a burst
    the statistics have not seen yet. ``never_analyzed``: only the burst, no statistics at all
    (autovacuum off for the table, so it cannot analyze it mid-test). A third of the burst is
    already ``rendering``."""
    with scratch_database(pg_server_url, "renderq_plans") as url:
        upgrade_head(url)
        engine = sa.create_engine(db.normalize_url(url))
        try:
            _fill(engine, with_history=request.param == "analyzed_history")
            yield engine
        finally:
            engine.dispose()


def _fill(engine: sa.Engine, *, with_history: bool) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE render SET (autovacuum_enabled = false)")
    if with_history:
        with engine.begin() as conn:
            _insert(conn, "old-", HISTORY)
            conn.exec_driver_sql(
                "UPDATE render SET status = 'complete', started_at = now(), completed_at = now()"
            )
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE render")
    with engine.begin() as conn:
        _insert(conn, "new-", BURST)
        conn.exec_driver_sql(
            "UPDATE render SET status = 'rendering', started_at = now(), "
            "lambda_render_id = 'r', lambda_bucket = 'b' WHERE id LIKE 'new-1%%'"
        )


IDS = {"pending": "new-0", "rendering": "new-1"}


def _indexes_used(engine: sa.Engine, statement: Any, params: dict[str, Any]) -> set[str]:
    """Names of the indexes (and "Seq Scan") in the plan PostgreSQL picks for these values."""
    expanded = statement.compile(dialect=engine.dialect).construct_expanded_state(params)
    with engine.connect() as conn:
        raw = conn.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + expanded.statement, expanded.parameters
        ).scalar()
    assert raw is not None
    plan = raw if isinstance(raw, list) else json.loads(raw)
    found: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Index Name" in node:
            found.add(node["Index Name"])
        if node.get("Node Type") == "Seq Scan":
            found.add("Seq Scan")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def _params(render_id: str) -> dict[str, Any]:
    now = utcnow()
    return {
        "rid": render_id,
        "token": uuid.uuid4().hex,
        "expires": now + timedelta(seconds=60),
        "now": now,
        "throttled_until": None,
        "lambda_render_id": "lambda-1",
        "lambda_bucket": "bucket-1",
        "permit": "m1:abc",
        "lambda_pool": "default",
        "p": 0.5,
        "cost": 0.01,
        "early": None,
        "url": "s3://bucket-1/out.mp4",
        "size": 1000,
        "code": "RENDER_FAILED",
        "message": "boom",
    }


def test_control_a_plain_status_guard_scans_the_backlog(engine):
    """Without the guard's precaution PostgreSQL picks a status index for a by-id update."""
    table = table_module._table
    plain = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("rid"), table.c.status == RenderStatus.PENDING)
        .values(claim_token=sa.bindparam("token"))
    )
    used = _indexes_used(engine, plain, _params(IDS["pending"]))
    assert "render_pkey" not in used, (
        f"this PostgreSQL no longer mis-plans the plain guard ({used}); the fixture no longer "
        "reproduces the hazard and needs a stronger skew"
    )


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("_CLAIM_CORE", "pending"),
        ("_RELEASE", "pending"),
        ("_RELEASE_KEEP_COUNT", "pending"),
        ("_MARK_RENDERING", "pending"),
        ("_PROGRESS", "rendering"),
        ("_COMPLETE", "rendering"),
        ("_FAIL_RENDERING", "rendering"),
    ],
)
def test_hot_updates_use_the_primary_key(engine, name, status):
    statement = getattr(starts if hasattr(starts, name) else polls, name)
    used = _indexes_used(engine, statement, _params(IDS[status]))
    assert used == {"render_pkey"}, f"{name} plans {used}"


def test_poll_targets_never_use_a_status_index(engine):
    """A batch of ids: by primary key, or (a never-analyzed table looks tiny to the planner)
    one sequential scan for the whole batch; never a scan of every render in a status."""
    ids = [f"new-1{i}" for i in range(40)]
    used = _indexes_used(engine, polls._POLL_TARGETS, {"ids": ids})
    assert used in ({"render_pkey"}, {"Seq Scan"}), f"poll_targets plans {used}"


def test_generic_guarded_update_uses_the_primary_key(engine):
    """``transition``/``fail`` build their UPDATE per call; same guard, same plan."""
    statement = (
        sa.update(Render)
        .where(
            col(Render.id) == IDS["pending"],
            table_module._status_is(RenderStatus.PENDING),
        )
        .values(error_code="X")
    )
    assert _indexes_used(engine, statement, {}) == {"render_pkey"}


def test_a_batch_of_completions_finds_its_rows_by_primary_key(engine):
    """The unnested batch UPDATE joins on the primary key (or, on a never-analyzed table the
    planner thinks tiny, one scan for the batch), never through a status index."""
    ids = [f"new-1{i}" for i in range(40)]
    params = {
        "ids": ids,
        "urls": ["s3://b/o.mp4"] * 40,
        "sizes": [1] * 40,
        "costs": [0.01] * 40,
        "now": utcnow(),
    }
    used = _indexes_used(engine, polls._PG_COMPLETE_MANY, params)
    assert used in ({"render_pkey"}, {"Seq Scan"}), f"complete many plans {used}"
