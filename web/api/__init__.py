"""The HTTP API, ``/v1``: renders for producers and readers, operations for operators.

``web/app.py`` includes ``router``. Modules: ``auth`` (API keys, scopes, per-key rate),
``route`` (body limit, errors as problems), ``problems`` (RFC 9457), ``renders`` and
``operations`` (the endpoints), ``schemas`` (bodies), ``docs`` (the reference page).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import APIRouter

from shared.settings import get_settings
from web.api import docs, operations, renders


@asynccontextmanager
async def _threads_fit_the_pool(_app: Any) -> AsyncIterator[None]:
    """Run at most ``DB_POOL_SIZE`` request threads (anyio's default is 40).

    Every API request holds a database connection for most of its thread's time. With more
    threads than pooled connections, the extra ones open an overflow connection each and close
    it when done: under load that is a new PostgreSQL backend per request (measured with the
    bench's API section: 172 renders/s with 40 threads on a pool of 10, 279 with a pool of 40,
    265 with 10 threads on 10 connections)."""
    to_thread.current_default_thread_limiter().total_tokens = get_settings().db_pool_size
    yield


router = APIRouter(prefix="/v1", lifespan=_threads_fit_the_pool)
router.include_router(renders.router)
router.include_router(operations.router)
router.include_router(docs.router)
