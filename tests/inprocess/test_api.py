"""The HTTP API in this process (``TestClient``), on real Redis and SQLite / PostgreSQL.

Every endpoint; the auth matrix (no key, wrong key, revoked, missing scope, foreign user);
problem documents naming field, value and limit; idempotent retries, also 20 at once; batch
atomicity; pagination while renders are being created; 413, 429. No worker runs: a created
render stays pending with its start message in the queue, which is what is checked.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared import api_keys, audit, repository
from shared.messages import start_render_message
from shared.models import RenderStatus
from shared.redis_client import get_redis
from shared.redis_keys import keys
from shared.settings import get_settings
from tests.inprocess import api_support
from tests.inprocess.api_support import KeyMaker, bearer, body, render_rows, start_messages
from tests.support import make_request

PROBLEM = "application/problem+json"
api, make_key = api_support.api, api_support.make_key  # the fixtures, found by their names


def _problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    doc: dict[str, Any] = answer.json()
    assert doc["status"] == status and doc["type"].startswith("/v1/docs#problem-")
    return doc


def _setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def test_create_read_list_timeline_quota_cancel(api: TestClient, make_key: KeyMaker) -> None:
    key = bearer(make_key("produce", "read"))
    created = api.post("/v1/renders", json=body(generation_id="g-1"), headers=key)
    assert created.status_code == 201, created.text
    render = created.json()
    assert render["status"] == "pending" and render["user_id"] == "u1"
    assert created.headers["location"] == f"/v1/renders/{render['id']}"
    assert start_messages() == 1 and render_rows() == 1

    read = api.get(f"/v1/renders/{render['id']}", headers=key).json()
    assert read["id"] == render["id"] and read["generation_id"] == "g-1"
    assert read["download_url"] is None  # not complete yet

    listed = api.get("/v1/renders", params={"user_id": "u1"}, headers=key).json()
    assert [r["id"] for r in listed["renders"]] == [render["id"]] and listed["next"] is None
    by_generation = api.get("/v1/renders", params={"generation_id": "nope"}, headers=key)
    assert by_generation.json()["renders"] == []
    by_status = api.get("/v1/renders", params={"status": "pending"}, headers=key).json()
    assert len(by_status["renders"]) == 1

    steps = api.get(f"/v1/renders/{render['id']}/timeline", headers=key).json()
    assert steps["render_id"] == render["id"]
    assert [s["kind"] for s in steps["steps"]][:1] in ([], ["created"])

    quota = api.get("/v1/users/u1/quota", headers=key).json()
    assert quota["user_id"] == "u1" and quota["limit"] == 1000 and quota["remaining"] >= 1

    cancelled = api.post(
        f"/v1/renders/{render['id']}/cancel", json={"reason": "changed my mind"}, headers=key
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancel_reason"] == "changed my mind"
    again = api.post(f"/v1/renders/{render['id']}/cancel", headers=key)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    entry = audit.recent(target=f"render:{render['id']}")[0]
    assert entry.action == "cancel" and entry.actor.startswith("api_key:")

    missing = api.get(f"/v1/renders/{uuid.uuid4()}", headers=key)
    _problem(missing, 404)
    _problem(api.post(f"/v1/renders/{uuid.uuid4()}/cancel", headers=key), 404)


def test_cancel_of_a_failed_render_is_409(api: TestClient, make_key: KeyMaker) -> None:
    key = bearer(make_key("produce", "read"))
    render = api.post("/v1/renders", json=body(), headers=key).json()
    repository.fail(render["id"], RenderStatus.PENDING, code="render_error", message="boom")
    doc = _problem(api.post(f"/v1/renders/{render['id']}/cancel", headers=key), 409)
    assert "failed" in doc["detail"]


def test_auth_matrix(api: TestClient, make_key: KeyMaker) -> None:
    producer = make_key("produce")
    reader_of_u2 = make_key("read", users=["u2"])
    render = api.post("/v1/renders", json=body(), headers=bearer(producer)).json()
    url = f"/v1/renders/{render['id']}"

    none = _problem(api.get(url), 401)
    assert "Bearer" in api.get(url).headers["www-authenticate"] and none["detail"]
    basic = api.get(url, headers={"Authorization": "Basic dXNlcjpwdw=="})
    _problem(basic, 401)
    wrong = api.get(url, headers=bearer(producer[:-4] + "AAAA"))
    _problem(wrong, 401)
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    _problem(api.get(url, headers=bearer("rq_not_a_key")), 401)

    _problem(api.get(url, headers=bearer(producer)), 403)  # produce, not read
    _problem(api.get(url, headers=bearer(reader_of_u2)), 403)  # u1's render
    _problem(api.get("/v1/renders", params={"user_id": "u1"}, headers=bearer(reader_of_u2)), 403)
    _problem(api.get("/v1/users/u1/quota", headers=bearer(reader_of_u2)), 403)
    _problem(api.get(f"{url}/timeline", headers=bearer(reader_of_u2)), 403)
    bound_producer = make_key("produce", users=["u2"])
    _problem(api.post("/v1/renders", json=body(), headers=bearer(bound_producer)), 403)
    _problem(api.post(f"{url}/cancel", headers=bearer(bound_producer)), 403)
    batch = {"renders": [body(user_id="u2"), body(user_id="u1")]}
    _problem(api.post("/v1/renders:batch", json=batch, headers=bearer(bound_producer)), 403)
    _problem(api.get("/v1/pauses", headers=bearer(producer)), 403)  # not operate
    assert render_rows() == 1 and start_messages() == 1  # nothing refused was stored

    ok = api.post("/v1/renders", json=body(user_id="u2"), headers=bearer(bound_producer))
    assert ok.status_code == 201
    # A bound key listing without user_id sees its users' renders only.
    seen = api.get("/v1/renders", headers=bearer(reader_of_u2)).json()["renders"]
    assert {r["user_id"] for r in seen} == {"u2"}

    ident = api_keys.key_id(producer)
    assert ident is not None and api_keys.revoke(ident)
    _problem(api.post("/v1/renders", json=body(), headers=bearer(producer)), 401)
    assert api_keys.get(ident).last_used_at is not None  # type: ignore[union-attr]  # it exists


def test_revocation_reaches_other_processes_within_the_cache_time(
    api: TestClient, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setting(monkeypatch, "API_KEY_CACHE_S", "0.3")
    key = make_key("read")
    assert api.get("/v1/renders", headers=bearer(key)).status_code == 200
    ident = api_keys.key_id(key)
    assert ident is not None
    # Revoked by another process: this one's cache still holds the key, for at most 0.3 s.
    import sqlalchemy as sa

    from shared.db import get_engine
    from shared.models import utcnow

    with get_engine().begin() as conn:
        conn.execute(
            sa.text("UPDATE api_key SET revoked_at = :now WHERE id = :id"),
            {"now": utcnow(), "id": ident},
        )
    import time

    time.sleep(0.35)
    _problem(api.get("/v1/renders", headers=bearer(key)), 401)


def test_validation_errors_name_field_value_and_limit(api: TestClient, make_key: KeyMaker) -> None:
    key = bearer(make_key("produce"))
    strict = _problem(api.post("/v1/renders", json=body(width="1920"), headers=key), 422)
    assert strict["errors"][0]["field"] == "width" and strict["errors"][0]["value"] == "1920"
    negative = _problem(api.post("/v1/renders", json=body(fps=0), headers=key), 422)
    assert negative["errors"][0] == {
        "field": "fps",
        "value": 0,
        "limit": "gt 0",
        "message": "Input should be greater than 0",
    }
    extra = _problem(api.post("/v1/renders", json=body(render_id="x"), headers=key), 422)
    assert extra["errors"][0]["field"] == "render_id"
    json_type = {**key, "Content-Type": "application/json"}
    broken = api.post("/v1/renders", content=b'{"user_id": ', headers=json_type)
    assert _problem(broken, 422)["errors"][0]["message"] == "JSON decode error"

    limits = _problem(api.post("/v1/renders", json=body(height=1440, fps=120), headers=key), 422)
    assert limits["type"] == "/v1/docs#problem-limit-exceeded"
    fields = {e["field"]: e for e in limits["errors"]}
    assert fields["fps"]["value"] == 120 and "MAX_FPS" in fields["fps"]["limit"]
    assert fields["height"]["value"] == 1440 and "MAX_SHORT_SIDE" in fields["height"]["limit"]
    too_long = _problem(
        api.post("/v1/renders", json=body(duration_in_frames=10_000), headers=key), 422
    )
    assert too_long["errors"][0]["field"] == "duration_in_frames"
    assert "MAX_DURATION_S" in too_long["errors"][0]["limit"]
    assert render_rows() == 0 and start_messages() == 0


def test_a_repeated_idempotency_key_returns_the_first_render(
    api: TestClient, make_key: KeyMaker
) -> None:
    key = bearer(make_key("produce"))
    first = api.post("/v1/renders", json=body(), headers={**key, "Idempotency-Key": "order-7"})
    again = api.post(
        "/v1/renders",
        json=body(generation_id="other"),
        headers={**key, "Idempotency-Key": "order-7"},
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["generation_id"] == "g1"
    assert first.json()["idempotency_key"] == "order-7"
    in_body = api.post("/v1/renders", json=body(idempotency_key="order-7"), headers=key)
    assert in_body.status_code == 200 and in_body.json()["id"] == first.json()["id"]
    differ = api.post(
        "/v1/renders", json=body(idempotency_key="a"), headers={**key, "Idempotency-Key": "b"}
    )
    assert _problem(differ, 422)["errors"][0]["field"] == "idempotency_key"
    # Another user's key: refused, and nothing of that render is shown.
    foreign = api.post(
        "/v1/renders", json=body(user_id="u9"), headers={**key, "Idempotency-Key": "order-7"}
    )
    assert first.json()["id"] not in _problem(foreign, 409)["detail"]
    assert render_rows() == 1 and start_messages() == 1


def test_twenty_concurrent_repeats_make_one_render_and_one_message(
    api: TestClient, make_key: KeyMaker
) -> None:
    key = {**bearer(make_key("produce")), "Idempotency-Key": "retry-storm"}
    gate = threading.Barrier(20)

    def post(_: int) -> tuple[int, str]:
        gate.wait()
        answer = api.post("/v1/renders", json=body(), headers=key)
        return answer.status_code, answer.json()["id"]

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))
    assert {status for status, _ in answers} <= {200, 201}
    assert len({rid for _, rid in answers}) == 1
    assert render_rows() == 1 and start_messages() == 1


def test_a_batch_is_stored_whole_or_not_at_all(
    api: TestClient, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = bearer(make_key("produce", "read"))
    good = [body(generation_id=f"b-{i}") for i in range(5)]
    created = api.post("/v1/renders:batch", json={"renders": good}, headers=key)
    assert created.status_code == 201, created.text
    assert len(created.json()["renders"]) == 5 and render_rows() == 5 and start_messages() == 5

    bad = [body(generation_id=f"c-{i}") for i in range(5)]
    bad[3]["width"] = 3840
    refused = _problem(api.post("/v1/renders:batch", json={"renders": bad}, headers=key), 422)
    assert {e["field"] for e in refused["errors"]} == {"renders.3.width"}
    assert refused["errors"][0]["value"] == 3840
    bad[3] = {**body(), "fps": "30"}
    typed = _problem(api.post("/v1/renders:batch", json={"renders": bad}, headers=key), 422)
    assert typed["errors"][0]["field"] == "renders.3.fps"
    assert render_rows() == 5 and start_messages() == 5  # nothing of either batch

    _setting(monkeypatch, "API_BATCH_MAX_RENDERS", "3")
    over = _problem(api.post("/v1/renders:batch", json={"renders": good[:4]}, headers=key), 422)
    assert over["errors"][0]["field"] == "renders" and over["errors"][0]["value"] == 4
    _problem(api.post("/v1/renders:batch", json={"renders": []}, headers=key), 422)
    # Items with keys used before come back as they were; the rest are new.
    keyed = [body(idempotency_key="k-1"), body(idempotency_key="k-2")]
    first = api.post("/v1/renders:batch", json={"renders": keyed}, headers=key).json()
    second = api.post("/v1/renders:batch", json={"renders": keyed}, headers=key).json()
    assert [r["id"] for r in first["renders"]] == [r["id"] for r in second["renders"]]
    assert render_rows() == 7 and start_messages() == 7


def test_pages_stay_stable_while_renders_are_created(api: TestClient, make_key: KeyMaker) -> None:
    key = bearer(make_key("produce", "read"))
    existing = [
        r["id"]
        for r in api.post(
            "/v1/renders:batch",
            json={"renders": [body(generation_id=f"p-{i}") for i in range(45)]},
            headers=key,
        ).json()["renders"]
    ]
    stop = threading.Event()

    def create_more() -> None:
        while not stop.is_set():
            api.post("/v1/renders", json=body(generation_id="new"), headers=key)

    creator = threading.Thread(target=create_more)
    creator.start()
    try:
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 7, "user_id": "u1"}
            if cursor:
                params["before"] = cursor
            page = api.get("/v1/renders", params=params, headers=key).json()
            seen += [r["id"] for r in page["renders"]]
            cursor = page["next"]
            if cursor is None:
                break
    finally:
        stop.set()
        creator.join()
    assert len(seen) == len(set(seen))  # no render twice
    assert set(existing) <= set(seen)  # none of those that existed skipped
    # One batch shares one created_at: its renders follow by id, newest (largest) first.
    assert [i for i in seen if i in set(existing)] == sorted(existing, reverse=True)
    _problem(api.get("/v1/renders", params={"before": "garbage!"}, headers=key), 400)


def test_bodies_over_the_limit_are_refused_unread(
    api: TestClient, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setting(monkeypatch, "API_MAX_BODY_BYTES", "2048")
    key = bearer(make_key("produce"))
    big = body(input_props={"text": "x" * 4000})
    declared = _problem(api.post("/v1/renders", json=big, headers=key), 413)
    assert "API_MAX_BODY_BYTES" in declared["detail"]

    def chunks() -> Any:  # no Content-Length: the limit stops the stream
        payload = json.dumps(big).encode()
        for i in range(0, len(payload), 512):
            yield payload[i : i + 512]

    streamed = api.post(
        "/v1/renders", content=chunks(), headers={**key, "Content-Type": "application/json"}
    )
    _problem(streamed, 413)
    assert api.post("/v1/renders", json=body(), headers=key).status_code == 201
    assert render_rows() == 1


def test_a_key_over_its_rate_gets_429_with_retry_after(
    api: TestClient, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    _setting(monkeypatch, "API_REQUEST_RATE_LIMIT", "3/10s")
    key, other = bearer(make_key("read")), bearer(make_key("read"))
    assert [api.get("/v1/renders", headers=key).status_code for _ in range(3)] == [200] * 3
    limited = api.get("/v1/renders", headers=key)
    doc = _problem(limited, 429)
    assert (
        1 <= int(limited.headers["retry-after"]) <= 10 and "API_REQUEST_RATE_LIMIT" in doc["detail"]
    )
    assert api.get("/v1/renders", headers=other).status_code == 200  # per key
    ident = api_keys.key_id(key["Authorization"].removeprefix("Bearer "))
    assert get_redis().exists(f"{keys().api_rate_limit_prefix()}:{ident}")


def _dead_letter(queue: str, render_id: str) -> str:
    message = start_render_message({"render_id": render_id})
    doc = json.loads(message.encode())
    doc["options"] = {**doc.get("options", {}), "traceback": "Traceback\nBoom: no", "retries": 3}
    get_redis().zadd(keys().dead_letters(queue), {message.message_id: int(time.time() * 1000)})
    get_redis().hset(keys().dead_letter_messages(queue), message.message_id, json.dumps(doc))
    return message.message_id


def test_operator_endpoints(api: TestClient, make_key: KeyMaker) -> None:
    ops = bearer(make_key("operate", "produce", "read"))
    bound_ops = bearer(make_key("operate", users=["u2"]))
    a = api.post("/v1/renders", json=body(), headers=ops).json()["id"]
    b = api.post("/v1/renders", json=body(generation_id="g2"), headers=ops).json()["id"]
    repository.fail(a, RenderStatus.PENDING, code="render_error", message="boom")
    repository.fail(b, RenderStatus.PENDING, code="limit_exceeded", message="too big")

    replayed = api.post(f"/v1/renders/{a}/replay", headers=ops)
    assert replayed.status_code == 200 and replayed.json()["status"] == "pending"
    assert replayed.json()["attempts"] == 2
    _problem(api.post(f"/v1/renders/{a}/replay", headers=ops), 409)  # pending now
    assert "force" in _problem(api.post(f"/v1/renders/{b}/replay", headers=ops), 409)["detail"]
    _problem(api.post(f"/v1/renders/{uuid.uuid4()}/replay", headers=ops), 404)
    _problem(api.post(f"/v1/renders/{b}/replay", headers=bound_ops), 403)
    many = api.post("/v1/renders:replay", json={"ids": [a, b, "nope"], "force": True}, headers=ops)
    assert many.status_code == 200
    assert many.json()["replayed"] == [b] and many.json()["not_found"] == ["nope"]
    assert a in many.json()["skipped"]
    assert audit.recent(target=f"render:{b}")[0].action == "replay"

    queue = get_settings().start_queue
    first, second = _dead_letter(queue, a), _dead_letter(queue, b)
    letters = api.get("/v1/dead-letters", headers=ops).json()["dead_letters"]
    assert {d["message_id"] for d in letters} == {first, second}
    _problem(api.get("/v1/dead-letters", headers=bound_ops), 403)
    _problem(api.get("/v1/dead-letters", params={"queue": "nope"}, headers=ops), 404)
    assert api.post(f"/v1/dead-letters/{queue}/{first}/requeue", headers=ops).status_code == 200
    _problem(api.post(f"/v1/dead-letters/{queue}/{first}/requeue", headers=ops), 404)
    assert api.delete(f"/v1/dead-letters/{queue}/{second}", headers=ops).status_code == 204
    _problem(api.delete(f"/v1/dead-letters/{queue}/{second}", headers=ops), 404)
    assert api.get("/v1/dead-letters", headers=ops).json()["dead_letters"] == []

    paused = api.put("/v1/pauses/users/u1", json={"reason": "billing"}, headers=ops)
    assert paused.status_code == 200 and paused.json()["user_id"] == "u1"
    assert paused.json()["by"].startswith("api_key:") and paused.json()["reason"] == "billing"
    assert api.put("/v1/pauses/all", headers=ops).json()["user_id"] is None
    _problem(api.put("/v1/pauses/all", headers=bound_ops), 403)
    _problem(api.put("/v1/pauses/users/u1", headers=bound_ops), 403)
    assert api.put("/v1/pauses/users/u2", headers=bound_ops).status_code == 200
    listed = api.get("/v1/pauses", headers=ops).json()
    assert [p["user_id"] for p in listed["pauses"]] == [None, "u1", "u2"] and listed["held"] == 0
    bound_view = api.get("/v1/pauses", headers=bound_ops).json()["pauses"]
    assert [p["user_id"] for p in bound_view] == [None, "u2"]
    assert api.delete("/v1/pauses/users/u1", headers=ops).json() == {"released": 0}
    assert api.delete("/v1/pauses/all", headers=ops).json() == {"released": 0}
    assert api.delete("/v1/pauses/users/u2", headers=bound_ops).status_code == 200
    assert api.get("/v1/pauses", headers=ops).json()["pauses"] == []
    actions = {e.action for e in audit.recent(limit=50) if e.actor.startswith("api_key:")}
    assert {"replay", "dead_letter.requeue", "dead_letter.delete", "pause", "resume"} <= actions


def test_the_openapi_document_and_the_docs_page(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    create = doc["paths"]["/v1/renders"]["post"]
    assert create["security"] == [{"ApiKey": []}] and create["x-scope"] == "produce"
    assert PROBLEM in create["responses"]["422"]["content"]
    assert {"201", "200", "401", "403", "409", "413", "422", "429"} <= set(create["responses"])
    assert "RenderRequest" in doc["components"]["schemas"]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if path.startswith("/v1/"):
                assert "401" in op["responses"] and op.get("security"), (method, path)
    page = api.get("/v1/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "<script" not in page.text and "cdn" not in page.text.lower()
    assert 'id="problem-limit-exceeded"' in page.text and "/v1/renders:batch" in page.text
    assert api.get("/docs").status_code == 404 and api.get("/redoc").status_code == 404
    # The interactive page: Swagger UI with its files from this process, not a CDN.
    tried = api.get("/v1/docs/try")
    assert tried.status_code == 200 and "/openapi.json" in tried.text
    assert "/v1/docs/assets/swagger-ui-bundle.js" in tried.text and "cdn" not in tried.text.lower()
    script = api.get("/v1/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert api.get("/v1/docs/assets/swagger-ui.css").status_code == 200
    assert api.get("/v1/docs/assets/..%2Fsecret").status_code == 404


def test_producer_and_api_renders_share_idempotency(api: TestClient, make_key: KeyMaker) -> None:
    from shared.producer import enqueue_render

    python = enqueue_render(make_request(idempotency_key="shared-key"))
    over_http = api.post(
        "/v1/renders",
        json=body(),
        headers={**bearer(make_key("produce")), "Idempotency-Key": "shared-key"},
    )
    assert over_http.status_code == 200 and over_http.json()["id"] == python.id
