"""Test fixtures: real Redis, real SQLite and PostgreSQL, the emulator, real worker processes.

Isolation: each test gets its own Redis key namespace (every renderq and Dramatiq key is under
it) and its own database (a SQLite file, or a PostgreSQL database created for the session and
emptied per test), so the suite can run beside a demo or another suite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypedDict

import pytest
import redis
import sqlalchemy as sa

from devtools.devstack import Stack, drop_namespace, free_port, scratch_database
from devtools.migrate import upgrade_head
from devtools.process import reset_caches
from shared import db, redis_keys
from shared.settings import Settings
from tests.support import WorkerGroup, wait_until

if TYPE_CHECKING:
    from devtools.emulator import EmulatorServer

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_SETTINGS = Settings()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis at TEST_REDIS_URL, or a private redis-server for the session if none runs."""
    stack = Stack(log_dir=tmp_path_factory.mktemp("redis"))
    yield stack.ensure_redis(os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS_URL))
    stack.close()


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_PG_URL)
    try:
        engine = sa.create_engine(db.normalize_url(url))
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:
        if os.environ.get("RENDERQ_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL required but unreachable at {url}: {exc}")
        pytest.skip(f"PostgreSQL unreachable at {url}: {exc}")
    return url


@pytest.fixture(scope="session")
def pg_database_url(pg_server_url: str) -> Iterator[str]:
    """A database of our own for this test session, dropped at the end."""
    with scratch_database(pg_server_url, "renderq_test") as url:
        upgrade_head(url)
        yield url
        db.dispose_engines()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Run the test once against SQLite and once against PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'renderq.db'}"
        upgrade_head(url)
        yield url
        return
    url = request.getfixturevalue("pg_database_url")
    engine = sa.create_engine(db.normalize_url(url))
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "TRUNCATE TABLE render, user_limits, render_event, render_timeline, audit_entry,"
            " api_key, operator, console_session"
        )
    engine.dispose()
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'renderq.db'}"
    upgrade_head(url)
    return url


@pytest.fixture
def namespace(redis_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A Redis namespace of the test's own. Afterwards every key the test's processes wrote
    must have a shape ``shared.redis_keys`` lists (tests that write keys of their own on
    purpose are marked ``own_redis_keys``); then the namespace is dropped."""
    ns = f"renderq-test-{uuid.uuid4().hex[:10]}"
    yield ns
    client = redis.Redis.from_url(redis_url)
    try:
        written = [k.decode() for k in client.scan_iter(match=f"{ns}:*", count=1000)]
    finally:
        client.close()
    drop_namespace(redis_url, ns)
    if request.node.get_closest_marker("own_redis_keys") is None:
        queues = (
            DEFAULT_SETTINGS.start_queue,
            DEFAULT_SETTINGS.admitted_queue,
            DEFAULT_SETTINGS.poll_queue,
            DEFAULT_SETTINGS.notify_queue,
        )
        unknown = sorted(k for k in written if not redis_keys.is_known(k, ns, queues))
        assert not unknown, f"keys not listed in shared/redis_keys.py: {unknown[:10]}"


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    from devtools.emulator import EmulatorServer

    server = EmulatorServer(port=0, speed=3000)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    namespace: str,
    emulator: EmulatorServer,
) -> Iterator[dict[str, str]]:
    """Point settings at this test's Redis namespace and the emulator; the database is chosen
    by the test (``use_db``). Returns the environment for child processes too."""
    values = {
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": namespace,
        "AWS_ENDPOINT_URL_LAMBDA": emulator.url,
        "AWS_ENDPOINT_URL_S3": emulator.url,
        "REMOTION_AWS_ACCESS_KEY_ID": "AKIAEMULATORTEST0001",
        "REMOTION_AWS_SECRET_ACCESS_KEY": "emulator-secret-key-not-real-0000000000",
        "REMOTION_SERVE_URL": "https://example.invalid/sites/test/index.html",
        "POLL_INTERVAL_S": "0.25",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "BROKER_HEARTBEAT_TIMEOUT_MS": "3000",
        "BROKER_MAINTENANCE_CHANCE": "100000",
        "RENDER_RATE_LIMIT": "1000/1s",
        "METRICS_PORT": "0",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    _reset_caches()
    yield values
    _reset_caches()


def _reset_caches() -> None:
    reset_caches()


@pytest.fixture
def use_db(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """Call with a database URL to make it this test's database (in-process and children)."""

    def _use(url: str) -> str:
        monkeypatch.setenv("DATABASE_URL", url)
        env["DATABASE_URL"] = url
        _reset_caches()
        return url

    return _use


@pytest.fixture
def workers(env: dict[str, str]) -> Iterator[WorkerGroup]:
    group = WorkerGroup(ROOT, env)
    yield group
    group.stop_all()


class _Restart(Protocol):
    """Shut the private Redis down, wait ``down_for`` seconds, start it on the same data."""

    def __call__(self, down_for: float) -> None: ...


class PrivateRedis(TypedDict):
    """What ``private_redis`` yields."""

    proc: subprocess.Popen[bytes]
    argv: list[str]
    url: str
    restart: _Restart


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis of our own (with AOF, like production) that the test may restart."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server binary needed to restart Redis")
    port = free_port()
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--dir",
        str(tmp_path),
    ]

    def up() -> bool:
        try:
            return bool(redis.Redis.from_url(state["url"]).ping())
        except redis.ConnectionError:
            return False

    def restart(down_for: float) -> None:
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis.from_url(state["url"]).shutdown()
        state["proc"].wait(10)
        time.sleep(down_for)
        state["proc"] = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        wait_until(up, timeout=10, what="redis back")

    state: PrivateRedis = {
        "proc": subprocess.Popen(argv, stdout=subprocess.DEVNULL),
        "argv": argv,
        "url": f"redis://127.0.0.1:{port}/0",
        "restart": restart,
    }
    wait_until(up, timeout=10, what="private redis")
    yield state
    state["proc"].terminate()
    state["proc"].wait(10)
