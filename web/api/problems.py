"""Errors of the HTTP API as RFC 9457 problem details (``application/problem+json``).

Every refusal names what was wrong the way ``RenderLimitExceeded`` does: ``errors`` lists
``{field, value, limit, message}``, so the developer of another service reading it learns the
field, what they sent and what is allowed without reading renderq's code. ``type`` is a
relative URI into the docs page (``/v1/docs#problem-<slug>``), which lists every type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from shared.render_limits import Violation

MEDIA_TYPE = "application/problem+json"

#: slug -> (status, title): the problem types the API answers with (listed on the docs page).
TYPES: dict[str, tuple[int, str]] = {
    "bad-request": (400, "The request is malformed"),
    "unauthorized": (401, "A valid API key is required"),
    "forbidden": (403, "This API key may not do that"),
    "not-found": (404, "No such resource"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "The resource is not in a state that allows this"),
    "body-too-large": (413, "The request body is too large"),
    "validation": (422, "The request is not valid"),
    "limit-exceeded": (422, "The render breaks a render limit"),
    "rate-limited": (429, "Too many requests for this API key"),
    "internal": (500, "Internal error"),
    "unavailable": (503, "A service renderq depends on is unavailable"),
}


@dataclass
class Problem(Exception):
    """Raised anywhere under the API's routes; answered as a problem document."""

    slug: str
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None

    def response(self) -> Response:
        status, title = TYPES[self.slug]
        doc: dict[str, Any] = {
            "type": f"/v1/docs#problem-{self.slug}",
            "title": title,
            "status": self.status or status,
        }
        if self.detail is not None:
            doc["detail"] = self.detail
        if self.errors is not None:
            doc["errors"] = self.errors
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)
        return Response(body, self.status or status, self.headers, media_type=MEDIA_TYPE)


def _shown(value: Any) -> Any:
    """A sent value worth echoing: scalars, long strings cut (never a whole body)."""
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:200] + "..."
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return None


def _limit_of(error: dict[str, Any]) -> str | None:
    ctx = error.get("ctx") or {}
    parts = [f"{k} {v}" for k, v in ctx.items() if k != "error"]
    if parts:
        return ", ".join(parts)
    return None


def from_validation(exc: RequestValidationError) -> Problem:
    """FastAPI's 422 as a problem: one item per pydantic error, ``body.``/``query.`` dropped
    from the field (the location is said once, in ``message`` when it is not the body)."""
    items = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        where = loc[0] if loc else "body"
        path = ".".join(loc[1:]) if len(loc) > 1 else where
        message = str(error.get("msg", "invalid"))
        if where in ("query", "path", "header"):
            message = f"{where} parameter: {message}"
        items.append(
            {
                "field": path,
                "value": _shown(error.get("input")),
                "limit": _limit_of(error),
                "message": message,
            }
        )
    return Problem("validation", f"{len(items)} error(s) in the request", items)


def from_violations(violations: list[tuple[str, Violation]]) -> Problem:
    """Render limits broken, each as ``(field path, violation)``."""
    items = [
        {"field": path, "value": _shown(v.value), "limit": v.limit, "message": f"{path} {v.limit}"}
        for path, v in violations
    ]
    return Problem("limit-exceeded", f"{len(items)} render limit(s) exceeded", items)


#: The problem document's JSON Schema, written out whole: an operation's ``responses`` cannot
#: add a model to the document's components under a media type of its own.
SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "/v1/docs#problem-<slug>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {"type": "string", "description": "e.g. `renders.3.width`"},
                    "value": {"description": "what was sent (scalars only; null otherwise)"},
                    "limit": {"type": ["string", "null"], "description": "what is allowed"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem responses of an operation, for the OpenAPI document."""
    titles: dict[int, list[str]] = {}
    for status, title in TYPES.values():
        titles.setdefault(status, []).append(title)
    return {
        status: {
            "description": "; ".join(titles[status]),
            "content": {MEDIA_TYPE: {"schema": SCHEMA}},
        }
        for status in statuses
    }
