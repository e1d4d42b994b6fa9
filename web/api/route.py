"""The API's route class: the body limit, and every error answered as a problem document.

Exception handlers are the application's in FastAPI, and the web process also serves
Remotion's webhooks and the console, which answer their own way. So the API's routes carry
their handling with them: a route class (FastAPI's documented way to customise one router's
request handling) that reads the body under ``API_MAX_BODY_BYTES`` before FastAPI parses it,
and turns validation errors, renderq's errors and outages into problem documents.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import redis
import sqlalchemy.exc
from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from shared.errors import IllegalTransition, RenderNotFound
from shared.log import get_logger
from shared.render_limits import RenderLimitExceeded
from shared.render_plan import OverCapacity
from shared.settings import get_settings
from web.api.problems import Problem, from_validation, from_violations

log = get_logger(__name__)

_BY_STATUS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found"}
_BY_STATUS |= {405: "method-not-allowed", 409: "conflict", 413: "body-too-large"}
_BY_STATUS |= {422: "validation", 429: "rate-limited", 503: "unavailable"}


class LimitedRequest(Request):
    """A request whose body is read at most ``API_MAX_BODY_BYTES`` far (``web.app.read_body``:
    a declared or streamed length over the limit stops the read)."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            from web import app as web_app  # web.app includes this router: import at use

            try:
                self._body = await web_app.read_body(self, get_settings().api_max_body_bytes)
            except web_app.BodyTooLarge:
                limit = get_settings().api_max_body_bytes
                raise Problem(
                    "body-too-large", f"bodies are limited to {limit} bytes (API_MAX_BODY_BYTES)"
                ) from None
        return self._body


def problem_for(exc: Exception) -> Problem:
    """The problem an exception raised under an API route stands for."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, RequestValidationError):
        return from_validation(exc)
    if isinstance(exc, RenderLimitExceeded):
        return from_violations([(v.field, v) for v in exc.violations])
    if isinstance(exc, OverCapacity):
        return Problem("limit-exceeded", str(exc))
    if isinstance(exc, RenderNotFound):
        return Problem("not-found", f"no render {exc.render_id}")
    if isinstance(exc, IllegalTransition):
        return Problem("conflict", f"render {exc.render_id} is {exc.actual or 'gone'}")
    if isinstance(exc, HTTPException):
        slug = _BY_STATUS.get(exc.status_code, "bad-request")
        return Problem(slug, str(exc.detail), headers=dict(exc.headers or {}))
    if isinstance(exc, (redis.RedisError, sqlalchemy.exc.OperationalError)):
        log.error("api dependency unavailable", error=type(exc).__name__)
        return Problem(
            "unavailable", f"{type(exc).__name__}: try again", headers={"Retry-After": "1"}
        )
    log.exception("api request failed")
    return Problem("internal", "the error was logged")


class ProblemRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(LimitedRequest(request.scope, request.receive))
            except Exception as exc:  # every error becomes a problem document; none is lost
                # FastAPI wraps what reading the body raised (our 413) in a 400 of its own.
                cause = exc.__cause__
                return problem_for(cause if isinstance(cause, Problem) else exc).response()

        return handle
