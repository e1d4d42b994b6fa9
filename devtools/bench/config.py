"""What the benchmark runs and how big: the section names, their dependencies, the sizes.

Kept apart so that the command line (``__main__``), the shared context and every section read
the same names and numbers; ``--quick`` swaps ``Sizes()`` for ``QUICK``.
"""

from __future__ import annotations

from dataclasses import dataclass

SECTIONS = (
    "bare",
    "lifecycle",
    "lifecycle_webhooks",
    "start_latency",
    "completion_latency",
    "poll_sweep",
    "enqueue",
    "throttle",
    "recovery",
    "webhooks",
    "memory",
    "capacity",
    "api",
)
REQUIRES = {"lifecycle": ("bare",), "lifecycle_webhooks": ("bare",), "memory": ("lifecycle",)}
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

#: Limits that must not be what is measured: every render may start at once.
UNLIMITED = {
    "RENDER_RATE_LIMIT": "1000000/1s",
    "LAMBDA_CONCURRENCY_BUDGET": "1000000000",
}


@dataclass(frozen=True)
class Sizes:
    """How much work each section does; ``--quick`` shrinks all of it for the smoke test."""

    bare_messages: int = 20_000
    lifecycle_renders: int = 2_000
    lifecycle_poll_interval_s: float = 0.2
    #: Renders through fresh workers before each lifecycle run is timed (``devtools.bench.bulk``).
    lifecycle_warmup: int = 200
    latency_rate: float = 100.0
    latency_seconds: float = 15.0
    latency_warmup_s: float = 1.0
    sweep_sizes: tuple[int, ...] = (1_000, 10_000)
    sweep_status_delay_ms: float = 50.0
    enqueue_single: int = 1_000
    enqueue_batched: int = 10_000
    enqueue_batch: int = 500
    throttle_samples: int = 5_000
    recovery_bucket_renders: int = 50_000
    webhook_rate: float = 20.0
    webhook_seconds: float = 10.0
    webhook_long_renders: int = 20
    capacity_flood: int = 2_000
    capacity_idle: int = 10_000
    capacity_idle_seconds: float = 20.0
    capacity_pool_renders: int = 200
    api_single: int = 5_000
    api_batched: int = 40_000
    api_batch: int = 200


QUICK = Sizes(
    bare_messages=1_000,
    lifecycle_renders=100,
    lifecycle_warmup=20,
    latency_rate=50.0,
    latency_seconds=2.0,
    latency_warmup_s=0.5,
    sweep_sizes=(100, 300),
    enqueue_single=100,
    enqueue_batched=1_000,
    throttle_samples=300,
    recovery_bucket_renders=2_000,
    webhook_rate=10.0,
    webhook_seconds=2.0,
    webhook_long_renders=2,
    capacity_flood=100,
    capacity_idle=300,
    capacity_idle_seconds=2.0,
    capacity_pool_renders=40,
    api_single=200,
    api_batched=1_000,
)
