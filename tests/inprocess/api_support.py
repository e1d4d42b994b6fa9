"""Fixtures of the HTTP API tests: the app in this process (``TestClient``), keys, counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared import api_keys
from shared.redis_client import get_redis
from shared.redis_keys import keys
from shared.settings import get_settings


def body(**overrides: Any) -> dict[str, Any]:
    """A valid ``POST /v1/renders`` body (1080p, 10 s)."""
    values: dict[str, Any] = {
        "user_id": "u1",
        "generation_id": "g1",
        "composition": "Main",
        "input_props": {"title": "Hi"},
        "width": 1920,
        "height": 1080,
        "fps": 30,
        "duration_in_frames": 300,
    }
    values.update(overrides)
    return values


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def start_messages() -> int:
    """Renders sent on: start messages waiting in the start queue (no worker runs in these
    tests), plus renders the producer put in the Lambda budget's line instead (they get their
    message when admitted; ``shared.admission.line_up``)."""
    client = get_redis()
    queued = client.hlen(keys().queue_messages(get_settings().start_queue))
    return int(queued) + int(client.hlen(keys().budget("parked")))


def render_rows() -> int:
    import sqlalchemy as sa

    from shared.db import get_engine

    with get_engine().connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM render")).scalar_one())


@pytest.fixture
def api(
    env: dict[str, str],
    use_db: Callable[[str], str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[TestClient]:
    monkeypatch.setenv("GC_FREEZE_AT_START", "false")  # it would freeze pytest's own heap
    use_db(database_url)
    from web.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client
    api_keys.clear_cache()


KeyMaker = Callable[..., str]


@pytest.fixture
def make_key(api: TestClient) -> KeyMaker:
    def _make(*scopes: str, users: list[str] | None = None) -> str:
        _, plaintext = api_keys.create("test", scopes or ("produce", "read"), users)
        return plaintext

    return _make
