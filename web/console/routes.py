"""The console's routes: pages (GET), live feeds (JSON), actions (confirmed POSTs).

Handlers are plain ``def``: FastAPI runs them in its thread pool, where the blocking database
and Redis calls of ``shared`` belong. Every action checks the CSRF token and origin first,
then, without ``confirm=yes``, answers a confirmation page that re-posts the same fields with
it; only the confirmed post acts, through ``shared.operations`` (which writes the audit entry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from shared import audit, operations, pauses, renders
from shared.errors import IllegalTransition, RenderNotFound
from shared.log import get_logger
from shared.models import ErrorCode, RenderStatus
from shared.settings import get_settings
from web.console import sessions, views
from web.console.security import ConsoleRoute, Forbidden, LoginRequired
from web.console.sessions import Login

log = get_logger(__name__)

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["ts"] = lambda v: "-" if v is None else f"{v:%Y-%m-%d %H:%M:%S}"
STATIC = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

#: A form field; every one defaults to "" so a missing field is refused by the handler's own
#: checks (CSRF, confirmation) with a page, not by FastAPI with a 422.
FormText = Annotated[str, Form()]


def _login(request: Request, *, feed: bool = False) -> Login:
    login = sessions.current(request)
    if login is None:
        raise LoginRequired(feed=feed)
    return login


def _checked(request: Request, csrf: str | None) -> Login:
    """The session of a state-changing request whose CSRF token and origin are right."""
    login = _login(request)
    if not sessions.csrf_ok(request, login, csrf):
        log.warning("console request refused: csrf", operator=login.operator, path=request.url.path)
        raise Forbidden
    return login


def _page(
    request: Request, name: str, login: Login | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    context.update(
        login=login,
        refresh_ms=get_settings().console_refresh_ms,
        notice=request.query_params.get("notice"),
    )
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _confirm(
    request: Request,
    login: Login,
    *,
    title: str,
    lines: list[str],
    fields: list[tuple[str, str]],
    button: str,
) -> HTMLResponse:
    return _page(
        request,
        "confirm.html",
        login,
        title=title,
        lines=lines,
        fields=fields,
        action=request.url.path,
        button=button,
    )


# --- static, login, logout ------------------------------------------------------------------


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The console's own CSS and JS (the only files served; no directory listing, no paths)."""
    kind = STATIC.get(name)
    if kind is None:
        return Response("not found", status_code=404, media_type="text/plain")
    body = (HERE / "static" / name).read_bytes()
    return Response(body, media_type=kind, headers={"Cache-Control": "public, max-age=300"})


def _safe_next(target: str | None) -> str:
    # Only a path of the console: never another host ("//evil", "https://evil").
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return "/console"


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return _page(request, "login.html", None, next=_safe_next(next), error=None)


@router.post("/login")
def login(
    request: Request,
    name: FormText = "",
    password: FormText = "",
    next: FormText = "/console",
) -> Response:
    target = _safe_next(next)
    if not sessions.same_origin(request):
        raise Forbidden
    client = request.client.host if request.client else None
    if sessions.login_blocked(name):
        log.warning("console login refused: too many failures", operator=name[:128], client=client)
        error = "too many failed attempts; wait a minute"
        return _page(request, "login.html", None, 429, next=target, error=error)
    token = sessions.attempt(name, password, client)
    if token is None:
        error = "wrong name or password"
        return _page(request, "login.html", None, 401, next=target, error=error)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(value=token, **sessions.cookie_options())  # type: ignore[arg-type]  # the options are set_cookie's keyword arguments
    return response


@router.post("/logout")
def logout(request: Request, csrf: FormText = "") -> Response:
    login = _checked(request, csrf)
    sessions.close_session(request)
    log.info("console logout", operator=login.operator)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/console")
    return response


# --- overview -------------------------------------------------------------------------------


@router.get("")
def overview_page(request: Request) -> HTMLResponse:
    return _page(request, "overview.html", _login(request))


@router.get("/feed/overview")
def overview_feed(request: Request) -> JSONResponse:
    _login(request, feed=True)
    return JSONResponse(views.overview())


# --- renders --------------------------------------------------------------------------------


@router.get("/renders")
def renders_page(
    request: Request,
    render_id: str = "",
    user_id: str = "",
    generation_id: str = "",
    status: str = "",
    error_code: str = "",
    since: str = "",
    until: str = "",
    before: str = "",
) -> HTMLResponse:
    login = _login(request)
    form = views.Search(
        render_id=render_id,
        user_id=user_id,
        generation_id=generation_id,
        status=status,
        error_code=error_code,
        since=views.parse_time(since),
        until=views.parse_time(until),
        before=before,
    )
    page = views.search(form)
    return _page(
        request,
        "renders.html",
        login,
        form=form,
        page=page,
        statuses=[s.value for s in RenderStatus],
        error_codes=[c.value for c in ErrorCode],
    )


@router.get("/renders/{render_id}")
def render_page(request: Request, render_id: str) -> HTMLResponse:
    login = _login(request)
    found = views.render_page(render_id)
    if found is None:
        return _page(request, "missing.html", login, 404, what=f"render {render_id}")
    return _page(request, "render.html", login, page=found, r=found.render)


@router.get("/feed/renders/{render_id}")
def render_feed(request: Request, render_id: str) -> JSONResponse:
    _login(request, feed=True)
    render = renders.get(render_id)
    if render is None:
        return JSONResponse({"detail": "no such render"}, status_code=404)
    return JSONResponse(views.render_feed(render))


@router.post("/renders/{render_id}/cancel")
def cancel(
    request: Request,
    render_id: str,
    csrf: FormText = "",
    reason: FormText = "",
    confirm: FormText = "",
) -> Response:
    login = _checked(request, csrf)
    if confirm != "yes":
        return _confirm(
            request,
            login,
            title=f"Cancel render {render_id}?",
            lines=[
                "A pending render will never start; a rendering one is stopped on Lambda.",
                f"Reason: {reason or '(none given)'}",
            ],
            fields=[("reason", reason)],
            button="Yes, cancel this render",
        )
    try:
        operations.cancel(render_id, actor=login.actor, reason=reason or None)
        notice = "cancelled"
    except RenderNotFound:
        notice = "no such render"
    except IllegalTransition as exc:
        notice = f"not cancelled: the render is already {exc.actual}"
    return RedirectResponse(
        f"/console/renders/{quote(render_id)}?notice={quote(notice)}", status_code=303
    )


@router.post("/renders/replay")
def replay(
    request: Request,
    csrf: FormText = "",
    ids: Annotated[list[str] | None, Form()] = None,
    force: FormText = "",
    confirm: FormText = "",
) -> Response:
    login = _checked(request, csrf)
    chosen = list(dict.fromkeys(ids or []))[: views.PAGE_SIZE * 4]
    forced = force == "yes"
    if not chosen:
        return RedirectResponse("/console/renders?notice=select+renders+to+replay", 303)
    if confirm != "yes":
        found = {r.id: r for r in renders.get_many(chosen)}
        lines = []
        for rid in chosen:
            render = found.get(rid)
            reason = "no such render" if render is None else operations.skip_reason(render, forced)
            lines.append(f"{rid}: " + (f"skipped ({reason})" if reason else "replay"))
        fields = [("ids", rid) for rid in chosen] + ([("force", "yes")] if forced else [])
        return _confirm(
            request,
            login,
            title=f"Replay {len(chosen)} render(s)?" + (" (forced)" if forced else ""),
            lines=lines,
            fields=fields,
            button="Yes, replay",
        )
    outcome = operations.replay(chosen, actor=login.actor, force=forced)
    return _page(request, "replayed.html", login, outcome=outcome)


# --- dead letters ---------------------------------------------------------------------------


@router.get("/dead-letters")
def dead_letters_page(request: Request, queue: str = "") -> HTMLResponse:
    login = _login(request)
    chosen = queue if queue in operations.queues() else None
    letters = operations.dead_letters(chosen, limit=200)
    return _page(
        request,
        "dead_letters.html",
        login,
        letters=letters,
        queues=operations.queues(),
        queue=chosen or "",
    )


def _dead_letter_action(
    request: Request, verb: str, queue: str, message_id: str, csrf: str, confirm: str
) -> Response:
    login = _checked(request, csrf)
    if confirm != "yes":
        what = "sent again (retries reset)" if verb == "requeue" else "deleted for good"
        return _confirm(
            request,
            login,
            title=f"{verb.capitalize()} dead letter {message_id}?",
            lines=[f"The message on queue {queue} will be {what}."],
            fields=[("queue", queue), ("message_id", message_id)],
            button=f"Yes, {verb}",
        )
    if verb == "requeue":
        done = operations.requeue_dead_letter(queue, message_id, actor=login.actor)
    else:
        done = operations.delete_dead_letter(queue, message_id, actor=login.actor)
    notice = f"{verb}d {message_id}" if done else f"{message_id}: no such dead letter (any more)"
    return RedirectResponse(f"/console/dead-letters?notice={quote(notice)}", status_code=303)


@router.post("/dead-letters/requeue")
def requeue_dead_letter(
    request: Request,
    queue: FormText = "",
    message_id: FormText = "",
    csrf: FormText = "",
    confirm: FormText = "",
) -> Response:
    return _dead_letter_action(request, "requeue", queue, message_id, csrf, confirm)


@router.post("/dead-letters/delete")
def delete_dead_letter(
    request: Request,
    queue: FormText = "",
    message_id: FormText = "",
    csrf: FormText = "",
    confirm: FormText = "",
) -> Response:
    return _dead_letter_action(request, "delete", queue, message_id, csrf, confirm)


# --- pauses ---------------------------------------------------------------------------------


@router.get("/pauses")
def pauses_page(request: Request) -> HTMLResponse:
    login = _login(request)
    return _page(request, "pauses.html", login, pauses=pauses.active(), held=pauses.held_count())


@router.post("/pauses/pause")
def pause(
    request: Request,
    csrf: FormText = "",
    user_id: FormText = "",
    everything: FormText = "",
    reason: FormText = "",
    confirm: FormText = "",
) -> Response:
    login = _checked(request, csrf)
    user = user_id.strip() or None
    if user is None and everything != "yes":
        return RedirectResponse("/console/pauses?notice=name+a+user+or+tick+everything", 303)
    scope = "every start" if user is None else f"starts of user {user}"
    if confirm != "yes":
        return _confirm(
            request,
            login,
            title=f"Pause {scope}?",
            lines=[
                "Renders already rendering go on; pending ones wait (held) until resumed.",
                f"Reason: {reason or '(none given)'}",
            ],
            fields=[("user_id", user or ""), ("everything", everything), ("reason", reason)],
            button="Yes, pause",
        )
    operations.pause(user, actor=login.actor, reason=reason or None)
    return RedirectResponse(f"/console/pauses?notice={quote('paused ' + scope)}", 303)


@router.post("/pauses/resume")
def resume(
    request: Request,
    csrf: FormText = "",
    user_id: FormText = "",
    confirm: FormText = "",
) -> Response:
    login = _checked(request, csrf)
    user = user_id.strip() or None
    scope = "every start" if user is None else f"starts of user {user}"
    if confirm != "yes":
        return _confirm(
            request,
            login,
            title=f"Resume {scope}?",
            lines=["Held renders no other pause covers are sent on to start."],
            fields=[("user_id", user or "")],
            button="Yes, resume",
        )
    released = operations.resume(user, actor=login.actor)
    notice = f"resumed {scope}: {released} render(s) sent on"
    return RedirectResponse(f"/console/pauses?notice={quote(notice)}", 303)


# --- the audit log --------------------------------------------------------------------------


@router.get("/audit")
def audit_page(request: Request, target: str = "") -> HTMLResponse:
    login = _login(request)
    entries = audit.recent(limit=200, target=target or None)
    return _page(request, "audit.html", login, entries=entries, target=target)


@router.get("/{rest:path}")
def missing(request: Request, rest: str) -> HTMLResponse:
    """Anything else under /console: 404, but only to a logged-in operator."""
    return _page(request, "missing.html", _login(request), 404, what=f"/console/{rest}")
