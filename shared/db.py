"""Database engine and sessions for SQLite (the embedded default) and PostgreSQL.

SQLite is shared by several worker processes, so every connection gets WAL and a busy timeout;
without both, concurrent writers see "database is locked" (tests/test_repository.py races eight
threads on one file). Engines are created lazily per process (``shared.per_process``): the
dramatiq CLI forks, and a pooled connection must never cross a fork.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.per_process import PerProcess
from shared.settings import Settings, get_settings

#: What a PostgreSQL connection is set to while it is checked out for a transaction; between
#: uses (and for single statements) it is in autocommit (``create_db_engine``).
TRANSACTION_ISOLATION = "READ COMMITTED"


def _engines() -> tuple[Engine, Engine]:
    """(the pool, the view of it for transactions): one pool per process."""
    engine = create_db_engine(get_settings().database_url)
    if engine.dialect.name != "postgresql":
        return engine, engine
    return engine, engine.execution_options(isolation_level=TRANSACTION_ISOLATION)


_engine: PerProcess[tuple[Engine, Engine]] = PerProcess(
    _engines, close=lambda engines: engines[0].dispose()
)


def normalize_url(url: str) -> str:
    """Accept the URLs operators paste (``postgres://``, ``postgresql://``) and pin psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def create_db_engine(url: str, settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"timeout": settings.sqlite_busy_timeout_s, "check_same_thread": False},
            pool_size=settings.db_pool_size,
            max_overflow=2 * settings.db_pool_size,
        )
        busy_ms = int(settings.sqlite_busy_timeout_s * 1000)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling defers BEGIN and cannot do BEGIN IMMEDIATE;
            # take control so writes lock at BEGIN instead of failing at the first UPDATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No pre-ping: it costs a round trip on every transaction. After a server restart the first
    # use of a dead connection raises, SQLAlchemy then discards every older pooled connection,
    # and the message (or the poll batch's renders, at the next sweep) is retried;
    # tests/test_crash_safety.py cuts the database under load.
    #
    # Pooled connections are in autocommit: most statements on the hot path stand alone (a
    # guarded UPDATE, a read), and in autocommit each is one round trip, where psycopg would
    # send BEGIN before it and the pool a ROLLBACK after. ``get_engine`` hands out the same
    # pool for transactions (set to TRANSACTION_ISOLATION while checked out).
    return sa.create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=2 * settings.db_pool_size,
        pool_pre_ping=False,
        isolation_level="AUTOCOMMIT",
    )


def get_engine() -> Engine:
    """The engine for transactions (``engine.begin()``, sessions) and everything that does not
    say otherwise; on PostgreSQL a view of the autocommit pool that opens real transactions."""
    return _engine.get()[1]


def get_autocommit_engine() -> Engine:
    """The pool itself: on PostgreSQL each statement commits by itself, one round trip
    (``single_statement``, ``shared.repository.driver``). SQLite: the one engine."""
    return _engine.get()[0]


@contextmanager
def single_statement() -> Iterator[sa.Connection]:
    """A connection for exactly one data-changing statement, committed when it returns.

    On PostgreSQL the statement runs in autocommit: one round trip instead of three (psycopg
    sends BEGIN and COMMIT as commands of their own). A single UPDATE or INSERT is atomic by
    itself, so every compare-and-set keeps its guarantee; two statements in this block would
    be two transactions, which is why it is only for one. SQLite keeps its BEGIN IMMEDIATE
    transaction: it is in-process, there is no round trip to save.
    """
    engine = get_autocommit_engine()
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as conn:
        yield conn


def dispose_engines() -> None:
    """Drop every pooled connection of this process (tests switch databases with this)."""
    _engine.reset()


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
