"""The hot statements' psycopg path (``shared.repository.driver``) against real PostgreSQL:
same results as SQLAlchemy's, its errors, and a connection the server dropped."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from shared import db, renders, repository, timeline
from shared.models import RenderStatus, utcnow
from shared.repository import driver
from shared.repository.starts import _CLAIM_CORE
from tests.support import make_request


@pytest.fixture
def pg(use_db, pg_database_url):
    use_db(pg_database_url)
    assert driver.available()
    return pg_database_url


def _pending() -> str:
    rid = str(uuid.uuid4())
    repository.insert_pending(rid, make_request(generation_id=f"g-{rid[:6]}"))
    return rid


def test_claim_and_start_through_the_driver_match_the_row(pg) -> None:
    rid = _pending()
    claimed = repository.claim_start(rid, "tok", 30)
    assert claimed is not None and claimed.id == rid and claimed.start_requests == 1
    assert claimed.input_props == make_request().input_props  # json parsed by psycopg
    assert claimed.created_at.tzinfo is not None
    assert repository.claim_start(rid, "other", 30) is None  # the guard holds
    repository.mark_rendering(rid, "tok", "lambda-1", "bucket-1", None, "default", step={"x": 1})
    render = renders.get(rid)
    assert render is not None and render.status == RenderStatus.RENDERING
    assert render.lambda_render_id == "lambda-1" and render.claim_token is None
    (started,) = [e for e in timeline.entries(rid) if e.kind == "started"]
    assert started.detail["x"] == 1 and started.detail["lambda_render_id"] == "lambda-1"
    with pytest.raises(Exception, match="pending"):
        repository.mark_rendering(rid, "tok", "lambda-2", "bucket-1")  # not pending any more


def test_errors_are_sqlalchemys(pg) -> None:
    with pytest.raises(sa.exc.DBAPIError):
        driver.execute(sa.text("SELECT 1/0"), {})
    too_long = {"rid": "x", "token": "t" * 500, "expires": utcnow(), "now": utcnow()}
    with pytest.raises(sa.exc.DataError):  # the subclass SQLAlchemy would raise
        driver.execute(_CLAIM_CORE, too_long)
    params = {**too_long, "token": "t"}
    assert driver.execute(_CLAIM_CORE, params) == (0, [])  # no such row: nothing returned


def test_a_connection_the_server_dropped_is_discarded_not_reused(pg) -> None:
    _, [(pid,)] = driver.execute(sa.text("SELECT pg_backend_pid()"), {})
    other = sa.create_engine(db.normalize_url(pg))  # not the pool, whose connection is pid
    with other.begin() as admin:
        admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    other.dispose()
    with pytest.raises(sa.exc.OperationalError):
        driver.execute(sa.text("SELECT 1"), {})
    _, [(new_pid,)] = driver.execute(sa.text("SELECT pg_backend_pid()"), {})
    assert new_pid != pid  # the dead one was invalidated, a fresh one connected


def test_transactions_still_roll_back_on_the_autocommit_pool(pg) -> None:
    rid = _pending()

    def half_done_then_error() -> None:
        with db.get_engine().begin() as conn:
            conn.execute(sa.text("UPDATE render SET progress = 0.5 WHERE id = :r"), {"r": rid})
            raise RuntimeError

    with pytest.raises(RuntimeError):
        half_done_then_error()
    render = renders.get(rid)
    assert render is not None and render.progress == 0.0
    # And the pooled connection went back to autocommit for the next single statement.
    with db.single_statement() as conn:
        assert conn.connection.driver_connection.autocommit  # type: ignore[union-attr]  # psycopg


def test_throttled_until_and_release_keep_working(pg) -> None:
    rid = _pending()
    assert repository.claim_start(rid, "tok", 30)
    until = utcnow() + timedelta(seconds=5)
    assert repository.release_claim(rid, "tok", throttled_until=until)
    render = renders.get(rid)
    assert render is not None and render.claim_token is None and render.start_requests == 0
