"""Per-process state: what must be forgotten when settings change (tests, the benchmark)."""

from __future__ import annotations


def reset_caches() -> None:
    """Drop every per-process object that captured settings (engines, clients, the limiter,
    the budget, the Lambda client: everything held by ``shared.per_process``)."""
    from shared import per_process, user_limits
    from shared.settings import get_settings

    get_settings.cache_clear()
    per_process.reset_all()
    user_limits.clear_cache()
