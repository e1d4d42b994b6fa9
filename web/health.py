"""``/healthz``: the web process can reach what it serves from (Redis, the database)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shared.db import get_engine
from shared.redis_client import get_redis


def check() -> dict[str, Any]:
    checks: dict[str, str] = {}
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    try:
        with get_engine().connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    return {"ok": all(v == "ok" for v in checks.values()), "checks": checks}
