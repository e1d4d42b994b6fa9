"""The render table's columns, the shared ``now`` parameter and the status guard of by-id
statements (why the guard is written the way it is: ``_status_is``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from shared.models import Render, RenderStatus

_table = Render.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation
_c = _table.c
_now: sa.BindParameter[Any] = sa.bindparam("now")


def _status_is(status: RenderStatus) -> sa.ColumnElement[bool]:
    """The status guard of a statement that already names its rows by id.

    Written so no index can serve it (``status || '' = :status``): the row is found by primary
    key and the guard is checked on that row. A plain ``status = :status`` lets PostgreSQL
    choose a ``(status, ...)`` index instead whenever its statistics say the status is rare,
    which is the normal state of this table (most rows are finished) and exactly wrong during
    a burst: each claim then scans every pending render, O(backlog) per statement
    (``tests/test_query_plans.py``).
    """
    return sa.type_coerce(_c.status, sa.String).concat("") == RenderStatus(status).value
