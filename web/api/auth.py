"""Who is calling: the API key behind ``Authorization: Bearer``, its scope, its users, its rate.

Each operation depends on ``caller(scope)``: no key or a wrong one is 401 (with
``WWW-Authenticate``), a key without the scope is 403, and a key over
``API_REQUEST_RATE_LIMIT`` is 429 with ``Retry-After``. The rate is counted per key in Redis
(``shared.redis_exact_bucket``: one script on Redis time), so it holds across web replicas.
A key bound to users (``ApiKey.user_ids``) may act only for them: ``Caller.check_user``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared import api_keys
from shared.access_models import ApiKey
from shared.per_process import PerProcess
from shared.rate_spec import parse_rates
from shared.redis_client import get_redis
from shared.redis_exact_bucket import KeyedBucketFactory
from shared.redis_keys import keys
from shared.settings import get_settings
from web.api.problems import Problem

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="`Authorization: Bearer rq_<id>_<secret>` (`python -m scripts.api_keys create`)",
)
_CHALLENGE = 'Bearer realm="renderq"'


def _buckets() -> KeyedBucketFactory:
    return KeyedBucketFactory(
        get_redis(),
        keys().api_rate_limit_prefix(),
        lambda _key_id: parse_rates(get_settings().api_request_rate_limit),
    )


_factory: PerProcess[KeyedBucketFactory] = PerProcess(_buckets)


@dataclass(frozen=True)
class Caller:
    key: ApiKey

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"api_key:{self.key.id}"

    @property
    def users(self) -> list[str] | None:
        """The users this key may act for (None: any)."""
        return self.key.user_ids

    def may_act_for(self, user_id: str) -> bool:
        return self.key.user_ids is None or user_id in self.key.user_ids

    def check_user(self, user_id: str) -> None:
        if not self.may_act_for(user_id):
            raise Problem("forbidden", f"this key may not act for user {user_id}")

    def check_unbound(self, what: str) -> None:
        if self.key.user_ids is not None:
            raise Problem("forbidden", f"{what} needs a key not bound to users")


def _throttle(key_id: str) -> None:
    factory = _factory.get()
    decision = factory.get(factory.wrap_item(key_id)).decide(factory.wrap_item(key_id))
    if decision.allowed:
        return
    wait_ms = decision.retry_after_ms if decision.retry_after_ms is not None else 1000
    spec = get_settings().api_request_rate_limit
    raise Problem(
        "rate-limited",
        f"this key is limited to {spec} (API_REQUEST_RATE_LIMIT); retry in {wait_ms} ms",
        headers={"Retry-After": str(max(1, math.ceil(wait_ms / 1000)))},
    )


def caller(scope: str) -> Callable[[HTTPAuthorizationCredentials | None], Caller]:
    """The dependency of an operation that needs ``scope``."""
    assert scope in api_keys.SCOPES, scope

    def dependency(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        if credentials is None:
            raise Problem(
                "unauthorized",
                "send Authorization: Bearer <API key>",
                headers={"WWW-Authenticate": _CHALLENGE},
            )
        key = api_keys.authenticate(credentials.credentials)
        if key is None:
            raise Problem(
                "unauthorized",
                "the API key is unknown, wrong or revoked",
                headers={"WWW-Authenticate": _CHALLENGE + ', error="invalid_token"'},
            )
        if scope not in key.scopes:
            raise Problem("forbidden", f"this key lacks the {scope} scope")
        _throttle(key.id)
        return Caller(key)

    dependency.__name__ = f"caller_{scope}"
    return dependency


produce = caller("produce")
read = caller("read")
operate = caller("operate")
