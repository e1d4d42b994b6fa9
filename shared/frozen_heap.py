"""Moves a long-lived process's start-up objects out of the garbage collector's sight.

A worker or web process holds 165,000-190,000 objects from start-up that live as long as it
does: botocore's service models, SQLAlchemy's and pydantic's machinery, FastAPI's routes,
Remotion's client. CPython's full (generation 2) collection walks every one of them while
holding the GIL, and no thread of the process runs meanwhile: 93-114 ms in a booted worker on
the benchmark's 2-core machine, one such pause per process within seconds of its start and
more as it lives, each one a stall of every request the process was serving
(``docs/performance.md``). ``gc.freeze()`` puts what exists at that moment in the permanent
generation, which collections skip; objects made afterwards are collected as before. A
collection comes first, so that nothing frozen is garbage already. Reference counting still
frees a frozen object that stops being used; only a frozen reference cycle would outlive its
use, and start-up objects are not thrown away.

Called once the process has built what it would otherwise build on its first requests (its
clients: each loads a service model), before it serves: the worker's ``FrozenStartupHeap``
middleware, the web process's lifespan.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

from sqlalchemy.orm import configure_mappers

from shared.log import get_logger
from shared.pools import Pool, PoolConfigError, configured_pools
from shared.settings import get_settings

log = get_logger(__name__)


def _build_for_pools(client: str, build: Callable[[Pool], object]) -> None:
    """Build ``client`` for each configured pool. A pool whose client cannot be built, or a
    pool configuration that cannot be read, is logged and skipped: the first request that
    needs the client reports the error as it always did."""
    try:
        pools = configured_pools()
    except PoolConfigError:
        return  # reported where a pool is used (the worker's Preflight, a request)
    for pool in pools:
        try:
            build(pool)
        except Exception as exc:
            log.warning(f"could not build a pool's {client} client", pool=pool.name, error=str(exc))


def freeze_start_up_heap(client: str, build: Callable[[Pool], object]) -> int | None:
    """Unless ``GC_FREEZE_AT_START`` is off (then None): build each pool's ``client`` with
    ``build``, configure SQLAlchemy's mappers (done on the first query otherwise), collect,
    then freeze every object tracked now; returns how many are frozen."""
    if not get_settings().gc_freeze_at_start:
        return None
    _build_for_pools(client, build)
    configure_mappers()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("start-up heap frozen", objects=frozen)
    return frozen
