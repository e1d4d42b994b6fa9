"""Lambda pools: the regions, accounts or functions renders may run in, each with its budget.

One AWS region's concurrency is often not enough (Remotion recommends spreading renders over
regions), and a second account doubles it again. Each pool has its own function, site, bucket
and budget; admission (``shared.lambda_budget``) picks the first pool in preference order with
room, the render row records it (``lambda_pool``), and every later call for that render
(progress, cancel, recovery) goes to the same pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import RenderqError
from shared.settings import Settings, get_settings

DEFAULT_POOL = "default"


class PoolConfigError(RenderqError):
    """``LAMBDA_POOLS`` cannot be used: a worker refuses to start rather than guess."""


class _PoolEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    budget: int = Field(ge=1)
    region: str | None = None
    function_name: str | None = None
    serve_url: str | None = None
    bucket: str | None = None
    #: A Lambda/S3-compatible endpoint (a VPC endpoint, LocalStack); None: AWS's own.
    endpoint_url: str | None = None


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    budget: int
    region: str
    function_name: str
    serve_url: str
    bucket: str | None
    endpoint_url: str | None


def parse_pools(settings: Settings) -> tuple[Pool, ...]:
    if not settings.lambda_pools:
        return (
            Pool(
                DEFAULT_POOL,
                settings.lambda_concurrency_budget,
                settings.remotion_aws_region,
                settings.remotion_lambda_function_name,
                settings.remotion_serve_url,
                settings.remotion_bucket_name,
                None,
            ),
        )
    try:
        raw = json.loads(settings.lambda_pools)
        if not isinstance(raw, list) or not raw:
            raise PoolConfigError("LAMBDA_POOLS must be a non-empty JSON list of pools")
        entries = [_PoolEntry.model_validate(item) for item in raw]
    except (ValueError, ValidationError) as exc:
        raise PoolConfigError(f"LAMBDA_POOLS is not valid: {exc}") from exc
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise PoolConfigError(f"LAMBDA_POOLS names repeat: {names}")
    return tuple(
        Pool(
            e.name,
            e.budget,
            e.region or settings.remotion_aws_region,
            e.function_name or settings.remotion_lambda_function_name,
            e.serve_url or settings.remotion_serve_url,
            e.bucket if e.bucket is not None else settings.remotion_bucket_name,
            e.endpoint_url,
        )
        for e in entries
    )


_parsed: list[tuple[Settings, tuple[Pool, ...]]] = []


def configured_pools() -> tuple[Pool, ...]:
    """The pools of the current settings, in preference order (parsed once per settings
    object; the object is held, so a new one is never mistaken for it)."""
    settings = get_settings()
    if _parsed and _parsed[0][0] is settings:
        return _parsed[0][1]
    pools = parse_pools(settings)
    _parsed[:] = [(settings, pools)]
    return pools


def pool_named(name: str | None) -> Pool:
    """The pool a render runs in; rows from before pools (None) ran in the first one."""
    pools = configured_pools()
    for pool in pools:
        if pool.name == (name or pools[0].name):
            return pool
    if name is None or name == DEFAULT_POOL:
        return pools[0]
    raise PoolConfigError(f"render ran in pool {name!r}, which LAMBDA_POOLS no longer names")


def largest_budget() -> int:
    return max(p.budget for p in configured_pools())
