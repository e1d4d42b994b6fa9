"""Section ``bare``: the bare-Dramatiq drain rate every throughput figure is a ratio to.

The same ``dramatiq`` command line, processes, threads and broker settings as renderq's
workers, loading ``devtools.bench.noop`` (one actor that does nothing) instead of
``worker.actors``. ``measure_bare`` is also what ``lifecycle`` calls before each of its
repetitions, so that every ratio pairs two measurements taken minutes, not hours, apart.
"""

from __future__ import annotations

import time
from typing import Any

from devtools.bench.common import chunks, cpu_note, fmt_rate
from devtools.bench.context import Bench
from devtools.bench.run import Run
from devtools.bench.support import NOOP_ACTOR, NOOP_QUEUE
from shared.redis_keys import RedisKeys


def bare(bench: Bench) -> None:
    """Enqueue N no-op messages, then start the workers; rate = messages drained between
    the first ack seen and the queue's message hash being empty (boot time excluded)."""
    n = bench.sizes.bare_messages
    figures = measure_bare(bench, "bare")
    bench.bare_rate = figures["messages_per_s"]
    bench.sections["bare"] = {
        "runs": 1,
        "settings": {
            **bench.worker_settings(),
            "messages": n,
            "broker": "dramatiq RedisBroker, default middleware, renderq heartbeat_timeout "
            "and maintenance_chance",
            "timing": "first ack seen -> message hash empty (polled every 2 ms)",
        },
        "figures": figures,
    }
    bench.row(
        "bare dramatiq drain",
        fmt_rate(bench.bare_rate, "msg/s"),
        f"no-op actor, {n:,} msgs, -p {bench.args.processes} -t {bench.args.threads}; "
        + cpu_note(figures, "msg"),
    )


def measure_bare(bench: Bench, name: str) -> dict[str, Any]:
    import redis
    from dramatiq.brokers.redis import RedisBroker

    from shared.messages import enqueue_many, make_broker, new_message

    n = bench.sizes.bare_messages
    # The no-op workers never open the database; the URL only completes the environment.
    with Run(bench, name, f"sqlite:///{bench.run_dir / 'unused.db'}") as run:
        # Dramatiq's own broker: the baseline's producer rings no doorbell.
        broker = make_broker(broker_class=RedisBroker)
        messages = [new_message(NOOP_QUEUE, NOOP_ACTOR, [i]) for i in range(n)]
        for part in chunks(messages, 1_000):
            enqueue_many(broker, part)
        broker.client.connection_pool.disconnect()
        client = redis.Redis.from_url(bench.redis_url)
        key = RedisKeys(run.namespace).queue_messages(NOOP_QUEUE)
        assert client.hlen(key) == n, "not every no-op message was enqueued"
        run.worker = run.stack.start_dramatiq(
            "worker",
            "devtools.bench.noop",
            processes=bench.args.processes,
            threads=bench.args.threads,
        )
        spawned = time.monotonic()
        first: tuple[float, int] | None = None
        cpu_first: dict[str, Any] = {}
        deadline = spawned + 120 + n / 500
        while True:
            left = int(client.hlen(key))
            now = time.monotonic()
            if first is None and left < n:
                first = (now, left)
                cpu_first = run.cpu_snapshot()
            if left == 0:
                cpu_last = run.cpu_snapshot()
                break
            if now > deadline or run.worker.poll() is not None:
                raise RuntimeError(
                    f"bare workers did not drain the queue ({left} left):\n"
                    + run.stack.log_tail("worker")
                )
            time.sleep(0.002)
        client.close()
        assert first is not None
        seconds = now - first[0]
        rate = first[1] / seconds
    return {
        "messages_per_s": round(rate, 1),
        "drain_seconds": round(seconds, 3),
        "messages_timed": first[1],
        "seconds_incl_boot": round(now - spawned, 3),
        **run.cpu_figures(cpu_first, cpu_last, first[1]),
    }
