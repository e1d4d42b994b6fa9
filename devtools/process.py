"""Per-process state: what must be forgotten when settings change (tests, the benchmark)."""

from __future__ import annotations


def reset_caches() -> None:
    """Drop every per-process cache that captured settings: engines, clients, limiter, budget."""
    from shared import db, messages, rate_limit, redis_client, user_limits
    from shared.settings import get_settings
    from worker import lambda_budget, lambda_client

    get_settings.cache_clear()
    db.dispose_engines()
    messages.reset_producer_broker()
    lambda_client.reset_lambda()
    redis_client.reset_redis()
    rate_limit.reset_limiter()
    lambda_budget.reset_budget()
    user_limits.clear_cache()
