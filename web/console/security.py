"""What every console response carries, and how a request without a login is answered.

``ConsoleRoute`` wraps each console route's handler: a handler raises ``LoginRequired`` or
``Forbidden`` and the wrapper turns it into a redirect to the login page (pages), a 401 (JSON
feeds) or a 403, then adds the secure headers to whatever goes out, so no console response can
leave without them. The CSP allows only this origin (no inline script or style: the JS and CSS
are static files), the console cannot be framed (clickjacking on its action buttons) and the
browser sends no Referer elsewhere (render ids and search terms stay inside). ``Server-Timing``
says how long the server took (``devtools/console_perf.py`` reads it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.routing import APIRoute

SECURE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """No live session: pages go to the login page, feeds answer 401."""

    def __init__(self, *, feed: bool = False) -> None:
        super().__init__("login required")
        self.feed = feed


class Forbidden(Exception):
    """A state-changing request without the session's CSRF token or from another origin."""


def _answer(request: Request, exc: Exception) -> Response:
    if isinstance(exc, LoginRequired):
        if exc.feed or request.method != "GET":
            return JSONResponse({"detail": "login required"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/login?next={quote(target, safe='')}", 303)
    return PlainTextResponse(
        "refused: the form's CSRF token or origin is missing or wrong; reload the page",
        status_code=403,
    )


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def secured(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except (LoginRequired, Forbidden) as exc:
                response = _answer(request, exc)
            for name, value in SECURE_HEADERS.items():
                response.headers.setdefault(name, value)
            # The server's own time for the response (the 200 ms target is measured by it).
            elapsed_ms = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
            return response

        return secured
