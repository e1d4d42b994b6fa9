"""A full run with real-looking credentials configured: no secret appears in any log line,
including the tracebacks of a database outage and the Lambda errors of a bad run."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shared.db import normalize_url
from shared.producer import enqueue_renders
from shared.render_request import RenderRequest
from tests.support import database_outage_under_load, emulator_call, make_request

pytestmark = pytest.mark.e2e

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DB_PASSWORD = "pg-Pa55w0rd-not-for-logs"


def test_no_secret_in_any_log_line(env, use_db, pg_database_url, workers, emulator, monkeypatch):
    engine = sa.create_engine(normalize_url(pg_database_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE TABLE render, user_limits, render_event")
    engine.dispose()
    use_db(pg_database_url)
    for key, value in {
        "REMOTION_AWS_ACCESS_KEY_ID": KEY_ID,
        "REMOTION_AWS_SECRET_ACCESS_KEY": SECRET,
        "LOG_LEVEL": "DEBUG",
    }.items():
        monkeypatch.setenv(key, value)
        env[key] = value
    emulator_call(emulator.url, "/_emulator/faults", {"crash_starts": 2, "throttle_status": 3})

    def req(i: int, **props: object) -> RenderRequest:
        return make_request(
            user_id="u",
            generation_id=f"s{i}",
            width=1280,
            height=720,
            duration_in_frames=60,
            input_props=dict(props),
        )

    stored = enqueue_renders(
        [req(i) for i in range(6)] + [req(9, __emulator__={"fatal_at": 0.3, "message": "boom"})]
    )
    ids = [r.id for r in stored]
    # A database outage: errors with tracebacks in the logs. Trust auth ignores the password,
    # but it is in the URL every worker uses.
    database_outage_under_load(workers, pg_database_url, ids, down_s=3, password=DB_PASSWORD)
    logs = workers.all_logs()
    assert "Traceback" in logs or '"exception"' in logs, "the outage should have logged errors"
    for secret in (KEY_ID, SECRET, DB_PASSWORD):
        assert secret not in logs, f"{secret[:6]}... leaked into the logs"
