"""Section ``recovery``: finding an ambiguous start by its outName in a full bucket.

A start whose outcome is unknown (a worker died after sending it, a read timeout) makes the
next attempt list Remotion's bucket under ``renders/`` for the render's outName before it
starts another (``worker/start_recovery.py``). Real buckets accumulate render folders until
their lifecycle rules delete them (``REMOTION_DELETE_AFTER``); this seeds the emulator's bucket
with that many finished renders (ids of Remotion's shape, under renderq's default
``deleteAfter``: every one is listed by the search), starts one real render and times the
search for it.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

from devtools.bench.context import Bench
from devtools.bench.run import Run
from devtools.bench.support import emulator_call

BUCKET = "remotionlambda-useast1-emulator"


def recovery(bench: Bench) -> None:
    from datetime import UTC, datetime, timedelta

    from worker.lambda_client import get_lambda

    seeded = bench.sizes.recovery_bucket_renders
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(bench.database("sqlite"))
        run = stack.enter_context(Run(bench, "recovery", db_url, emulator_args=["--speed", "100"]))
        assert run.emulator_url is not None
        emulator_call(run.emulator_url, "/_emulator/s3/seed", {"bucket": BUCKET, "renders": seeded})
        lam = get_lambda()
        started = lam.start(
            composition="Main",
            input_props={},
            codec="h264",
            width=1280,
            height=720,
            fps=30,
            duration_in_frames=300,
            out_name="bench-recovery-1.mp4",
        )
        since = datetime.now(UTC) - timedelta(minutes=5)
        # The search reads renderMetadata, which launch writes a moment after the start.
        deadline = time.monotonic() + 30
        while True:
            try:
                lam.find_render("bench-recovery-1.mp4", bucket=started.bucket, since=since)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            found = lam.find_render("bench-recovery-1.mp4", bucket=started.bucket, since=since)
            samples.append(time.perf_counter() - t0)
            assert found is not None and found.render_id == started.render_id
    median = statistics.median(samples)
    figures: dict[str, Any] = {
        "bucket_renders": seeded + 1,
        "bucket_objects": 2 * seeded + 2,
        "search_s_median": round(median, 3),
        "search_s_each": [round(s, 3) for s in samples],
    }
    bench.row(
        "outName recovery in a full bucket",
        f"{median:.2f} s",
        f"{seeded + 1:,} renders ({2 * seeded + 2:,} objects) under renders/, median of 5",
    )
    bench.sections["recovery"] = {
        "runs": 1,
        "settings": {"bucket_renders": seeded + 1, "list_page": 1000},
        "figures": figures,
    }
