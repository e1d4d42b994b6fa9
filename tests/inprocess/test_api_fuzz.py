"""Fuzzing the create endpoints with bodies built from ``/openapi.json`` (hypothesis).

Each body takes the ``RenderRequest`` properties the OpenAPI document lists and fills each with
a value that fits its schema, one near its limits, or any JSON at all; properties go missing
and unknown ones appear. Whatever comes in: never a 500, every refusal a problem document, and
after every request each stored render has its start message (no row without its message, no
half-stored batch). Bounded: 60 + 30 examples per database, a few seconds.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.inprocess import api_support
from tests.inprocess.api_support import KeyMaker, bearer, body, render_rows, start_messages

api, make_key = api_support.api, api_support.make_key  # the fixtures, found by their names

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _fitting(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of one property's schema (its first ``anyOf`` branch), near its bounds too."""
    if "anyOf" in schema:
        return st.one_of([_fitting(s) for s in schema["anyOf"]])
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "integer":
        low = schema.get("exclusiveMinimum", -1) + 1 if "exclusiveMinimum" in schema else -5
        return st.integers(min_value=low - 1, max_value=100_000) | st.sampled_from(
            [1, 30, 1080, 1920]
        )
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda v: len(v) <= 300)
        return st.text(max_size=schema.get("maxLength", 50) + 2)
    if kind == "object":
        return st.dictionaries(st.text(max_size=8), _json, max_size=3)
    if kind == "null":
        return st.none()
    return _json


def _bodies(doc: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    schema = doc["components"]["schemas"]["RenderRequest"]
    good = body()

    def one(name: str, prop: dict[str, Any]) -> st.SearchStrategy[Any]:
        options: list[st.SearchStrategy[Any]] = [_fitting(prop), _json]
        if name in good:
            options.insert(0, st.just(good[name]))
        return st.one_of(options)

    fields = st.fixed_dictionaries(
        {}, optional={name: one(name, prop) for name, prop in schema["properties"].items()}
    )
    extra = st.dictionaries(
        st.sampled_from(["render_id", "zzz", "schema_version"]), _json, max_size=1
    )
    return st.builds(lambda f, e: {**f, **e}, fields, extra)


def _check(answer: Any) -> None:
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == "application/problem+json", answer.text
        assert answer.json()["status"] == answer.status_code
    assert render_rows() == start_messages()


_FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@pytest.mark.timeout(120)
def test_fuzzed_single_bodies(api: TestClient, make_key: KeyMaker) -> None:
    key = bearer(make_key("produce"))

    bodies = _bodies(api.get("/openapi.json").json())

    @_FUZZ
    @given(sent=bodies)
    def run(sent: dict[str, Any]) -> None:
        _check(api.post("/v1/renders", json=sent, headers=key))

    run()


@pytest.mark.timeout(120)
def test_fuzzed_batches(api: TestClient, make_key: KeyMaker) -> None:
    key = bearer(make_key("produce"))
    doc = api.get("/openapi.json").json()
    mixed = st.one_of(st.just(body()), _bodies(doc))

    @settings(_FUZZ, max_examples=30)
    @given(items=st.lists(mixed, min_size=1, max_size=6))
    def run(items: list[dict[str, Any]]) -> None:
        before = render_rows()
        answer = api.post("/v1/renders:batch", json={"renders": items}, headers=key)
        _check(answer)
        stored = render_rows() - before
        if answer.status_code == 201:
            assert len(answer.json()["renders"]) == len(items)
        else:
            assert stored == 0  # refused: nothing of it stored

    run()
