"""The HTTP API, ``/v1``: renders for producers and readers, operations for operators.

``web/app.py`` includes ``router``. Modules: ``auth`` (API keys, scopes, per-key rate),
``route`` (body limit, errors as problems), ``problems`` (RFC 9457), ``renders`` and
``operations`` (the endpoints), ``schemas`` (bodies), ``docs`` (the reference page).
"""

from __future__ import annotations

from fastapi import APIRouter

from web.api import docs, operations, renders

router = APIRouter(prefix="/v1")
router.include_router(renders.router)
router.include_router(operations.router)
router.include_router(docs.router)
