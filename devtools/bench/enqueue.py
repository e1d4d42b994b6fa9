"""Section ``enqueue``: producer throughput, one render at a time and in batches.

One producer thread, no workers running, on each database: what a web service calling
``enqueue_render`` per request, or a bulk job calling ``enqueue_renders``, can push.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from devtools.bench.common import chunks, fmt_rate, make_request
from devtools.bench.context import Bench
from devtools.bench.run import Run


def enqueue(bench: Bench) -> None:
    """Producer throughput from one thread, no workers running: what a web service
    calling ``enqueue_render`` per request, or a bulk job batching, can push."""
    from shared.producer import enqueue_render, enqueue_renders

    figures: dict[str, Any] = {}
    single_n, batched_n = bench.sizes.enqueue_single, bench.sizes.enqueue_batched
    batch = bench.sizes.enqueue_batch
    for kind in bench.kinds():
        with contextlib.ExitStack() as stack:
            db_url = stack.enter_context(bench.database(kind))
            stack.enter_context(Run(bench, f"enqueue-{kind}", db_url))
            singles = [make_request(i, tag="enq1") for i in range(single_n)]
            started = time.perf_counter()
            for request in singles:
                enqueue_render(request)
            single_s = time.perf_counter() - started
            batched = [make_request(i, tag="enqN") for i in range(batched_n)]
            started = time.perf_counter()
            for part in chunks(batched, batch):
                enqueue_renders(part)
            batched_s = time.perf_counter() - started
        figures[kind] = {
            "single_renders_per_s": round(single_n / single_s, 1),
            "batched_renders_per_s": round(batched_n / batched_s, 1),
            "single_renders": single_n,
            "batched_renders": batched_n,
        }
        bench.row(
            f"enqueue single ({kind})",
            fmt_rate(single_n / single_s, "renders/s"),
            f"enqueue_render x {single_n:,}, one producer thread",
        )
        bench.row(
            f"enqueue batched ({kind})",
            fmt_rate(batched_n / batched_s, "renders/s"),
            f"enqueue_renders, batches of {batch}, {batched_n:,} renders",
        )
    bench.sections["enqueue"] = {
        "runs": 1,
        "settings": {
            "producer_threads": 1,
            "batch_size": batch,
            "timing": "RenderRequest objects built before the clock starts",
        },
        "figures": figures,
    }
