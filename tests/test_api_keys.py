"""API keys: ``python -m scripts.api_keys`` as an operator runs it, and what is stored.

The plaintext is printed once and never stored (only its SHA-256), nor logged; create and
revoke are audited as ``script:api_keys``; a revoked key no longer authenticates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from shared import api_keys, audit
from shared.log import REDACTED, _scrub_text
from tests.support import run_module


@pytest.fixture
def db(use_db: Callable[[str], str], sqlite_url: str, env: dict[str, str]) -> dict[str, str]:
    use_db(sqlite_url)
    return env


def test_create_list_revoke_from_the_command_line(db: dict[str, str]) -> None:
    made = run_module(
        "scripts.api_keys", db, "create", "--name", "billing", "--scope", "produce",
        "--scope", "read", "--user", "u1", "--user", "u2",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    plaintext = made.stdout.strip()
    assert plaintext.startswith("rq_") and len(plaintext.splitlines()) == 1
    ident = api_keys.key_id(plaintext)
    assert ident is not None and ident in made.stderr and plaintext not in made.stderr

    key = api_keys.authenticate(plaintext)
    assert key is not None and key.scopes == ["produce", "read"] and key.user_ids == ["u1", "u2"]
    assert key.secret_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext.split("_", 2)[2] not in key.model_dump_json()  # the secret is not stored

    listed = run_module("scripts.api_keys", db, "list", "--json")
    assert listed.returncode == 0 and plaintext not in listed.stdout
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["name"], r["revoked_at"]) for r in rows] == [(ident, "billing", None)]

    revoked = run_module("scripts.api_keys", db, "revoke", ident)
    assert revoked.returncode == 0, revoked.stderr
    api_keys.clear_cache()
    assert api_keys.authenticate(plaintext) is None
    assert run_module("scripts.api_keys", db, "revoke", ident).returncode == 1
    entries = [(e.action, e.actor) for e in audit.recent(target=f"api_key:{ident}")]
    assert entries == [("api_key.revoke", "script:api_keys"), ("api_key.create", "script:api_keys")]

    bad = run_module("scripts.api_keys", db, "create", "--name", "x", "--scope", "admin")
    assert bad.returncode == 2


def test_keys_are_checked_whole(db: dict[str, str]) -> None:
    _, plaintext = api_keys.create("k", ["read"])
    assert api_keys.authenticate(plaintext) is not None
    assert api_keys.authenticate(plaintext) is not None  # from the cache
    assert api_keys.authenticate(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) is None
    assert api_keys.authenticate("rq_0123456789abcdef_" + "x" * 43) is None
    assert api_keys.authenticate("") is None and api_keys.authenticate("Bearer x") is None
    with pytest.raises(api_keys.InvalidApiKeySpec):
        api_keys.create("k", [])
    with pytest.raises(api_keys.InvalidApiKeySpec):
        api_keys.create("k", ["read"], ["bad user"])


def test_api_keys_never_reach_a_log_line() -> None:
    key = "rq_0123456789abcdef_" + "Ab3-_" * 8 + "xyz"
    assert key not in _scrub_text(f"request with {key} failed")
    assert "abcdefgh12345678" not in _scrub_text("Authorization: Bearer abcdefgh12345678")
    assert REDACTED in _scrub_text("header bearer abcdefgh12345678")
    assert "api_key:0123456789abcdef" in _scrub_text("by api_key:0123456789abcdef")
