"""The hottest statements on PostgreSQL, straight through psycopg.

SQLAlchemy compiles each statement once (``Prepared``: its SQL text, the constants it binds,
which parameters are JSON) and psycopg runs it on a pooled autocommit connection: one round trip,
and none of SQLAlchemy's per-execution work (compiled-cache lookup, execution context, result
processing), which cost more client CPU than the round trip itself: a claim's ``UPDATE ..
RETURNING`` took 497 us of CPU through ``Connection.execute`` and 198 us this way
(docs/performance.md). psycopg prepares a statement on the server after a few executions on a
connection, so PostgreSQL stops parsing and planning it too.

Only for statements whose parameters and results need no SQLAlchemy type processing beyond
JSON (psycopg adapts str, int, float, None and aware datetimes itself, and parses json columns).
Errors come out as SQLAlchemy's (``DBAPIError`` and its subclasses), like everywhere else, and a
connection the server dropped is discarded from the pool instead of being handed out again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Json
from sqlalchemy.engine import Engine
from sqlalchemy.sql.compiler import SQLCompiler

from shared.db import get_autocommit_engine


class Prepared:
    """A Core statement compiled once for a dialect (bind names kept: psycopg's ``%(name)s``)."""

    def __init__(self, statement: sa.ClauseElement, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        assert isinstance(compiled, SQLCompiler)  # a Core statement compiles to SQL
        self.sql = str(compiled)
        self._json = frozenset(
            name for name, bind in compiled.binds.items() if isinstance(bind.type, sa.JSON)
        )
        # Literals inside the statement (a status, an increment) become bind parameters with
        # their values; enums are bound by value, as SQLAlchemy's string types do.
        self._constants = {
            name: value.value if isinstance(value, enum.Enum) else value
            for name, value in compiled.params.items()
            if not compiled.binds[name].required
        }

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        bound = {**self._constants, **params}
        for name in self._json:
            if bound.get(name) is not None:
                bound[name] = Json(bound[name])
        return bound


_prepared: dict[tuple[int, str], Prepared] = {}


def _prepare(statement: sa.ClauseElement, engine: Engine) -> Prepared:
    key = (id(statement), engine.dialect.name)
    found = _prepared.get(key)
    if found is None:
        found = _prepared[key] = Prepared(statement, engine)
    return found


def available() -> bool:
    """Whether the database is PostgreSQL (SQLite runs in-process: nothing to save there)."""
    return get_autocommit_engine().dialect.name == "postgresql"


def execute(statement: sa.ClauseElement, params: Mapping[str, Any]) -> tuple[int, Sequence[Any]]:
    """Run one statement (module-level, built once: it is cached by identity) in autocommit;
    returns (rowcount, the rows it returned)."""
    engine = get_autocommit_engine()
    prepared = _prepare(statement, engine)
    bound = prepared.bind(params)
    fairy = engine.raw_connection()
    try:
        with fairy.driver_connection.cursor() as cursor:  # type: ignore[union-attr]  # a psycopg connection on this engine
            cursor.execute(prepared.sql, bound)
            rows = cursor.fetchall() if cursor.description is not None else []
            return cursor.rowcount, rows
    except engine.dialect.loaded_dbapi.Error as exc:
        if engine.dialect.is_disconnect(exc, fairy.dbapi_connection, None):
            fairy.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            prepared.sql, bound, exc, engine.dialect.loaded_dbapi.Error
        ) from exc
    finally:
        fairy.close()
