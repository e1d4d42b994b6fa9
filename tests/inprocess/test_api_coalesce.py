"""Concurrent single creates share ``enqueue_renders`` calls, each still getting its own
render, and a failed shared call fails every request in it (and stores nothing)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from shared import producer, renders
from shared.models import Render
from shared.render_request import RenderRequest
from tests.support import make_request
from web.api.coalesce import Coalescer


@pytest.fixture
def db(use_db, sqlite_url):
    return use_db(sqlite_url)


def _concurrently(coalescer: Coalescer, requests: list[RenderRequest]) -> list[object]:
    results: list[object] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = coalescer.enqueue(requests[i])
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_concurrent_creates_share_calls_and_each_gets_its_render(db, monkeypatch):
    calls: list[int] = []
    real = producer.enqueue_renders

    def counting(requests: Sequence[RenderRequest]) -> list[Render]:
        calls.append(len(requests))
        return real(requests)

    monkeypatch.setattr(producer, "enqueue_renders", counting)
    requests = [make_request(user_id=f"u{i % 3}", generation_id=f"g{i}") for i in range(40)]
    results = _concurrently(Coalescer(max_batch=8), requests)
    assert all(isinstance(r, Render) for r in results)
    stored = [r for r in results if isinstance(r, Render)]
    assert [r.generation_id for r in stored] == [q.generation_id for q in requests]
    assert len({r.id for r in stored}) == 40 and len(renders.get_many([r.id for r in stored])) == 40
    assert sum(calls) == 40 and max(calls) <= 8
    assert len(calls) < 40  # shared: fewer calls than requests


def test_a_failed_shared_call_fails_each_request_in_it(db, monkeypatch):
    real = producer.enqueue_renders

    def down(requests: Sequence[RenderRequest]) -> list[Render]:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(producer, "enqueue_renders", down)
    results = _concurrently(Coalescer(), [make_request(generation_id=f"f{i}") for i in range(10)])
    assert all(isinstance(r, ConnectionError) for r in results)
    # The next request after the failure runs a call of its own.
    monkeypatch.setattr(producer, "enqueue_renders", real)
    assert isinstance(Coalescer().enqueue(make_request(generation_id="after")), Render)
