"""The web console in-process (FastAPI's TestClient) against real Redis and SQLite/PostgreSQL:
logins, sessions, CSRF, the secure headers, and every action confirmed and audited."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from devtools.process import reset_caches
from shared import audit, operators, pauses, renders, repository
from shared.access_models import ConsoleSession
from shared.db import get_engine
from shared.models import RenderStatus
from shared.redis_client import get_redis
from shared.redis_keys import keys
from shared.settings import get_settings
from tests.conftest import ROOT
from tests.support import captured_log, make_request
from web.app import create_app

PASSWORD = "correct horse battery staple"
ORIGIN = {"origin": "http://testserver"}


@pytest.fixture
def db(use_db: Callable[[str], str], database_url: str) -> str:
    url = use_db(database_url)
    with get_engine().begin() as conn:  # PostgreSQL's database is shared by the session
        for table in ("console_session", "operator", "audit_entry", "render_timeline"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    return url


@pytest.fixture
def client(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("GC_FREEZE_AT_START", "false")  # it would freeze pytest's own heap
    reset_caches()
    operators.create("ada", PASSWORD)
    with TestClient(create_app(), follow_redirects=False) as test_client:
        yield test_client


def _login(client: TestClient, name: str = "ada", password: str = PASSWORD) -> str:
    answer = client.post(
        "/console/login", data={"name": name, "password": password}, headers=ORIGIN
    )
    assert answer.status_code == 303, answer.text
    return _csrf(client)


def _csrf(client: TestClient, path: str = "/console/pauses") -> str:
    page = client.get(path)
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def _pending(user_id: str = "u1") -> str:
    render_id = str(uuid.uuid4())
    repository.insert_pending(render_id, make_request(user_id=user_id))
    return render_id


def _failed(code: str = "render_error") -> str:
    render_id = _pending()
    repository.fail(render_id, RenderStatus.PENDING, code=code, message="it broke")
    return render_id


PAGES = [
    "/console",
    "/console/renders",
    "/console/renders/some-id",
    "/console/dead-letters",
    "/console/pauses",
    "/console/audit",
    "/console/no-such-page",
]
FEEDS = ["/console/feed/overview", "/console/feed/renders/some-id"]
ACTIONS = [
    "/console/renders/some-id/cancel",
    "/console/renders/replay",
    "/console/dead-letters/requeue",
    "/console/dead-letters/delete",
    "/console/pauses/pause",
    "/console/pauses/resume",
    "/console/logout",
]


def test_login_sets_a_hashed_session_cookie_and_logout_ends_it(client: TestClient) -> None:
    assert client.get("/console").headers["location"].startswith("/console/login?next=")
    answer = client.post(
        "/console/login",
        data={"name": "ada", "password": PASSWORD, "next": "/console/renders"},
        headers=ORIGIN,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/renders"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # CONSOLE_HTTPS is off in tests
    token = client.cookies["renderq_console"]
    with Session(get_engine()) as session:
        [row] = session.exec(select(ConsoleSession)).all()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() and row.operator == "ada"
    assert client.get("/console").status_code == 200

    csrf = _csrf(client)
    out = client.post("/console/logout", data={"csrf": csrf}, headers=ORIGIN)
    assert out.status_code == 303
    with Session(get_engine()) as session:
        assert session.exec(select(ConsoleSession)).all() == []
    client.cookies.set("renderq_console", token, path="/console")  # a replayed old cookie
    assert client.get("/console").status_code == 303


def test_next_never_leaves_the_console(client: TestClient) -> None:
    answer = client.post(
        "/console/login",
        data={"name": "ada", "password": PASSWORD, "next": "//evil.example/x"},
        headers=ORIGIN,
    )
    assert answer.headers["location"] == "/console"


def test_wrong_password_unknown_name_and_disabled_operator_are_refused(
    client: TestClient,
) -> None:
    with captured_log() as log:
        for name, password in (("ada", "wrong password!!"), ("nobody", PASSWORD)):
            answer = client.post(
                "/console/login", data={"name": name, "password": password}, headers=ORIGIN
            )
            assert answer.status_code == 401 and "wrong name or password" in answer.text
            assert "renderq_console" not in client.cookies
        operators.disable("ada")
        good = {"name": "ada", "password": PASSWORD}
        assert client.post("/console/login", data=good, headers=ORIGIN).status_code == 401
    text = log.getvalue()
    assert "console login failed" in text
    assert "wrong password!!" not in text and PASSWORD not in text


def test_disabling_an_operator_ends_their_sessions(client: TestClient) -> None:
    _login(client)
    operators.disable("ada")
    assert client.get("/console").status_code == 303


def test_failed_logins_are_rate_limited(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSOLE_LOGIN_ATTEMPTS_PER_MIN", "2")
    get_settings.cache_clear()
    for _ in range(2):
        bad = {"name": "ada", "password": "not the password"}
        assert client.post("/console/login", data=bad, headers=ORIGIN).status_code == 401
    good = {"name": "ada", "password": PASSWORD}
    answer = client.post("/console/login", data=good, headers=ORIGIN)
    assert answer.status_code == 429 and "renderq_console" not in client.cookies


def test_login_from_another_origin_is_refused(client: TestClient) -> None:
    good = {"name": "ada", "password": PASSWORD}
    answer = client.post("/console/login", data=good, headers={"origin": "http://evil.example"})
    assert answer.status_code == 403
    assert client.post("/console/login", data=good).status_code == 403  # no Origin nor Referer


def test_nothing_is_reachable_without_a_session(client: TestClient) -> None:
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/console/login"), path
    for path in FEEDS:
        assert client.get(path).status_code == 401, path
    for path in ACTIONS:
        assert client.post(path, data={"csrf": "x"}, headers=ORIGIN).status_code == 401, path
    assert client.get("/console/static/console.css").status_code == 200
    assert client.get("/console/static/routes.py").status_code == 404  # only the two files


def test_secure_headers_on_every_console_response(client: TestClient) -> None:
    answers = [client.get("/console/login"), client.get("/console"), client.get(FEEDS[0])]
    _login(client)
    answers += [client.get(p) for p in PAGES] + [client.get(f) for f in FEEDS]
    answers += [client.get("/console/static/console.js")]
    answers += [client.post(ACTIONS[0], data={"csrf": "wrong"}, headers=ORIGIN)]
    for answer in answers:
        headers = answer.headers
        assert headers["content-security-policy"].startswith("default-src 'self'"), answer.url
        assert "'unsafe-inline'" not in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
    page = client.get("/console").text
    assert "<script>" not in page and " style=" not in page  # nothing inline for the CSP to block


def test_csrf_missing_wrong_or_cross_origin_is_403(client: TestClient) -> None:
    csrf = _login(client)
    render_id = _pending()
    path = f"/console/renders/{render_id}/cancel"
    confirmed = {"confirm": "yes", "reason": "x"}
    assert client.post(path, data=confirmed, headers=ORIGIN).status_code == 403
    assert client.post(path, data={**confirmed, "csrf": "wrong"}, headers=ORIGIN).status_code == 403
    for headers in ({"origin": "http://evil.example"}, {}, {"referer": "http://evil.example/"}):
        answer = client.post(path, data={**confirmed, "csrf": csrf}, headers=headers)
        assert answer.status_code == 403, headers
    assert renders.get(render_id).status == "pending"  # type: ignore[union-attr]  # inserted above
    # The same post from the console's own page goes through (Referer is enough).
    referer = {"referer": f"http://testserver/console/renders/{render_id}"}
    answer = client.post(path, data={**confirmed, "csrf": csrf}, headers=referer)
    assert answer.status_code == 303


def test_cancel_is_confirmed_then_audited(client: TestClient) -> None:
    csrf = _login(client)
    render_id = _pending()
    path = f"/console/renders/{render_id}/cancel"
    ask = client.post(path, data={"csrf": csrf, "reason": "wrong video"}, headers=ORIGIN)
    assert ask.status_code == 200 and "Yes, cancel this render" in ask.text
    assert renders.get(render_id).status == "pending"  # type: ignore[union-attr]  # inserted above
    done = client.post(
        path, data={"csrf": csrf, "reason": "wrong video", "confirm": "yes"}, headers=ORIGIN
    )
    assert done.status_code == 303
    assert renders.get(render_id).status == "cancelled"  # type: ignore[union-attr]  # inserted above
    [entry] = audit.recent(target=f"render:{render_id}")
    assert entry.actor == "operator:ada" and entry.action == "cancel"
    page = client.get(f"/console/renders/{render_id}")
    assert "operator:ada" in page.text and "wrong video" in page.text


def test_replay_skips_what_replaying_cannot_fix_unless_forced(client: TestClient) -> None:
    csrf = _login(client)
    fixable, unfixable = _failed("render_error"), _failed("limit_exceeded")
    listing = client.get("/console/renders?status=failed")
    assert fixable in listing.text and unfixable in listing.text
    form = {"csrf": csrf, "ids": [fixable, unfixable]}
    ask = client.post("/console/renders/replay", data=form, headers=ORIGIN)
    assert ask.status_code == 200 and "replaying the same request cannot fix it" in ask.text
    done = client.post("/console/renders/replay", data={**form, "confirm": "yes"}, headers=ORIGIN)
    assert done.status_code == 200 and "replayed: 1" in done.text
    assert renders.get(fixable).status == "pending"  # type: ignore[union-attr]  # inserted above
    assert renders.get(unfixable).status == "failed"  # type: ignore[union-attr]  # inserted above
    forced = {**form, "ids": [unfixable], "force": "yes", "confirm": "yes"}
    client.post("/console/renders/replay", data=forced, headers=ORIGIN)
    assert renders.get(unfixable).status == "pending"  # type: ignore[union-attr]  # inserted above
    replays = [(e.target, e.actor, e.detail["forced"]) for e in audit.recent()]
    assert sorted(replays) == sorted(
        [
            (f"render:{fixable}", "operator:ada", False),
            (f"render:{unfixable}", "operator:ada", True),
        ]
    )


def _dead_letter(message_id: str) -> None:
    queue = get_settings().start_queue
    body = {
        "queue_name": queue,
        "actor_name": "start_render",
        "args": [{"render_id": "r-dead"}],
        "kwargs": {},
        "options": {"traceback": "Traceback...\nValueError: poison"},
        "message_id": message_id,
        "message_timestamp": 1,
    }
    client = get_redis()
    # Now: Dramatiq's maintenance drops dead letters older than a week.
    client.zadd(keys().dead_letters(queue), {message_id: int(time.time() * 1000)})
    client.hset(keys().dead_letter_messages(queue), message_id, json.dumps(body))


def test_dead_letters_are_listed_requeued_and_deleted_with_audit(client: TestClient) -> None:
    csrf = _login(client)
    _dead_letter("m-requeue")
    _dead_letter("m-delete")
    page = client.get("/console/dead-letters")
    assert "m-requeue" in page.text and "ValueError: poison" in page.text
    queue = get_settings().start_queue
    for verb, message_id in (("requeue", "m-requeue"), ("delete", "m-delete")):
        form = {"csrf": csrf, "queue": queue, "message_id": message_id}
        ask = client.post(f"/console/dead-letters/{verb}", data=form, headers=ORIGIN)
        assert ask.status_code == 200 and f"Yes, {verb}" in ask.text
        done = client.post(
            f"/console/dead-letters/{verb}", data={**form, "confirm": "yes"}, headers=ORIGIN
        )
        assert done.status_code == 303, done.text
        assert "no%20such" not in done.headers["location"], done.headers["location"]
        found = audit.recent(target=f"message:{message_id}")
        [entry] = found
        assert entry.action == f"dead_letter.{verb}" and entry.actor == "operator:ada"
    assert "no dead letters" in client.get("/console/dead-letters").text
    assert get_redis().llen(keys().queue(queue)) == 1  # the requeued one is ready again


def test_pause_and_resume_a_user_and_everything(client: TestClient) -> None:
    csrf = _login(client)
    render_id = _pending("sleepy")
    form = {"csrf": csrf, "user_id": "sleepy", "reason": "billing"}
    ask = client.post("/console/pauses/pause", data=form, headers=ORIGIN)
    assert ask.status_code == 200 and "Yes, pause" in ask.text and pauses.active() == []
    client.post("/console/pauses/pause", data={**form, "confirm": "yes"}, headers=ORIGIN)
    [paused] = pauses.active()
    assert paused.user_id == "sleepy" and paused.by == "operator:ada"
    assert "paused by operator:ada" in client.get(f"/console/renders/{render_id}").text
    feed = client.get(f"/console/feed/renders/{render_id}").json()
    assert feed["status"] == "pending" and "billing" in feed["paused"]
    everything = {"csrf": csrf, "everything": "yes", "confirm": "yes"}
    client.post("/console/pauses/pause", data=everything, headers=ORIGIN)
    assert {p.user_id for p in pauses.active()} == {None, "sleepy"}
    for user in ("sleepy", ""):
        resume = {"csrf": csrf, "user_id": user, "confirm": "yes"}
        assert client.post("/console/pauses/resume", data=resume, headers=ORIGIN).status_code == 303
    assert pauses.active() == []
    done = sorted((e.action, e.target) for e in audit.recent() if e.actor == "operator:ada")
    assert done == [
        ("pause", "all"),
        ("pause", "user:sleepy"),
        ("resume", "all"),
        ("resume", "user:sleepy"),
    ]


def test_overview_feed_and_search(client: TestClient) -> None:
    _login(client)
    ids = [_pending(f"user-{i}") for i in range(3)]
    _failed("timeout")
    doc = client.get("/console/feed/overview").json()
    assert doc["counts"]["pending"] == 3 and doc["counts"]["failed"] == 1
    assert doc["throughput"]["failure_rate"] == 1.0 and "queues" in doc and "pauses" in doc
    assert ids[1] in client.get("/console/renders?user_id=user-1").text
    assert ids[0] not in client.get("/console/renders?user_id=user-1").text
    assert "timeout" in client.get("/console/renders?error_code=timeout").text
    assert (
        client.get("/console/renders?since=2000-01-01T00:00&until=2000-01-02T00:00").text.count(
            'data-render="'
        )
        == 0
    )


def test_search_pages_newest_first(client: TestClient) -> None:
    _login(client)
    ids = [_pending("pager") for _ in range(55)]
    first = client.get("/console/renders?user_id=pager").text
    assert first.count('data-render="') == 50
    older = re.search(r'id="older" href="([^"]+)"', first)
    assert older is not None
    second = client.get(older.group(1).replace("&amp;", "&")).text
    assert second.count('data-render="') == 5
    shown = re.findall(r'data-render="([^"]+)"', first + second)
    assert sorted(shown) == sorted(ids) and len(set(shown)) == 55


def test_operators_command(db: str, env: dict[str, str]) -> None:
    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scripts.operators", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**__import__("os").environ, "DATABASE_URL": db},
            check=False,
        )

    assert run("add", "grace", "--password-stdin", stdin="short\n").returncode == 1
    added = run("add", "grace", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0 and PASSWORD not in added.stdout + added.stderr
    reset_caches()
    assert operators.verify("grace", PASSWORD) is not None
    assert "grace\tenabled" in run("list").stdout
    assert run("disable", "grace").returncode == 0
    assert operators.verify("grace", PASSWORD) is None
    assert run("disable", "nobody").returncode == 1


def test_an_expired_session_is_no_session(client: TestClient) -> None:
    _login(client)
    with get_engine().begin() as conn:
        conn.execute(sa.text("UPDATE console_session SET expires_at = :at"), {"at": "2000-01-01"})
    assert client.get("/console").status_code == 303
    assert client.get("/console/feed/overview").status_code == 401


def test_the_cookie_is_secure_when_served_over_https(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSOLE_HTTPS", "true")
    get_settings.cache_clear()
    good = {"name": "ada", "password": PASSWORD}
    answer = client.post("/console/login", data=good, headers=ORIGIN)
    assert "Secure" in answer.headers["set-cookie"]
