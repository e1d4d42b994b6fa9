"""Section ``throttle``: what the per-user rate-limit middleware costs per message.

Measured in-process against the real Redis, single thread, with no worker around it: the
middleware hooks alone (permit acquired, then refunded), and the full permit path of a render
that does start.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from devtools.bench.context import Bench
from devtools.bench.run import Run
from devtools.bench.support import summarize_ms


def throttle(bench: Bench) -> None:
    """``UserRateLimit.before_process_message`` + ``after_process_message`` in-process
    against real Redis; the message does not start a render, so the permit is refunded.
    The full path of a render that does start (+ ``StartPermit.confirm`` + ``started``,
    no refund) is measured too."""
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    from shared.messages import new_message
    from worker.middleware.rate_limit import UserRateLimit
    from worker.permit import MessagePermit

    n, users = bench.sizes.throttle_samples, 50
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(bench.database("sqlite"))
        stack.enter_context(
            Run(bench, "throttle", db_url, settings={"RENDER_RATE_LIMIT": "1000000/1s"})
        )
        middleware = UserRateLimit()
        broker = StubBroker(middleware=[middleware])

        def start_render(payload: dict[str, Any]) -> None:
            """Stands in for the real actor: only its options matter to the middleware."""

        dramatiq.actor(
            actor_name="start_render",
            broker=broker,
            rate_limit_key=lambda message: message.args[0]["user_id"],
        )(start_render)

        def message(i: int) -> Any:
            payload = {"user_id": f"bench-user-{i % users}"}
            return new_message("renders", "start_render", [payload])

        def hooks(msg: Any) -> None:
            middleware.before_process_message(broker, msg)
            middleware.after_process_message(broker, msg, result=None)

        refused = 0

        def full(msg: Any) -> None:
            nonlocal refused
            middleware.before_process_message(broker, msg)
            permit = MessagePermit(msg)
            if permit.confirm() is not None:
                refused += 1
            permit.started()
            middleware.after_process_message(broker, msg, result=None)

        for i in range(2 * users):  # load scripts, cache every user's rate spec
            hooks(message(i))
        samples: dict[str, list[float]] = {"hooks": [], "full": []}
        for name, fn in (("hooks", hooks), ("full", full)):
            for i in range(n):
                msg = message(i)
                started = time.perf_counter()
                fn(msg)
                samples[name].append(time.perf_counter() - started)
    hooks_fig = summarize_ms(samples["hooks"])
    full_fig = summarize_ms(samples["full"])
    bench.sections["throttle"] = {
        "runs": 1,
        "settings": {
            "measured": "UserRateLimit.before_process_message + after_process_message "
            "(permit acquired, then refunded), single thread, in-process, real Redis",
            "also_measured": "full permit path of a started render: before + "
            "permit.confirm + permit.started + after (no refund)",
            "users": users,
            "RENDER_RATE_LIMIT": "1000000/1s",
            "samples": n,
        },
        "figures": {"hooks": hooks_fig, "full_start_path": full_fig, "refused": refused},
    }
    bench.row(
        "throttle overhead p50 / p99",
        f"{hooks_fig['p50_ms']:.3f} / {hooks_fig['p99_ms']:.3f} ms",
        f"before+after hooks (acquire+refund), {n:,} msgs, real Redis",
    )
    bench.row(
        "throttle full start path p50 / p99",
        f"{full_fig['p50_ms']:.3f} / {full_fig['p99_ms']:.3f} ms",
        "before + permit.confirm + permit.started + after",
    )
