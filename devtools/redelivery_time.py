"""How long a killed worker's message takes to come back: ``python -m devtools.redelivery_time``.

Each trial enqueues one render, arms the ``start.before_claim`` failpoint (the worker SIGKILLs
itself right after taking the message, like an OOM kill), restarts the worker group the moment
it dies (as a supervisor would) and measures the time from the death to the render being
started by the new worker. Uses the broker settings from the environment
(BROKER_HEARTBEAT_TIMEOUT_MS, BROKER_MAINTENANCE_CHANCE), so operators can try their own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from typing import TYPE_CHECKING

from devtools.devstack import ROOT, Stack, drop_namespace

if TYPE_CHECKING:
    from shared.models import Render


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    run_dir = ROOT / "var" / f"redelivery-{uuid.uuid4().hex[:6]}"
    stack = Stack(log_dir=run_dir)
    namespace = f"redelivery-{uuid.uuid4().hex[:6]}"
    results: list[float] = []
    try:
        redis_url = stack.ensure_redis(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        emulator_url = stack.start_emulator("--speed", "3000")
        stack.env.update(
            {
                "REDIS_URL": redis_url,
                "REDIS_NAMESPACE": namespace,
                "DATABASE_URL": f"sqlite:///{run_dir / 'redelivery.db'}",
                "AWS_ENDPOINT_URL_LAMBDA": emulator_url,
                "AWS_ENDPOINT_URL_S3": emulator_url,
                "REMOTION_AWS_ACCESS_KEY_ID": "AKIAREDELIVERY000000",
                "REMOTION_AWS_SECRET_ACCESS_KEY": "redelivery-secret-not-real-000000000000",
                "LOG_FORMAT": "json",
                "FAILPOINTS": "start.before_claim",
                "RENDER_RATE_LIMIT": "1000/1s",
            }
        )
        os.environ.update(stack.env)
        from devtools.migrate import upgrade_head

        upgrade_head(stack.env["DATABASE_URL"])
        import redis

        from shared import renders
        from shared.producer import RenderRequest, enqueue_render
        from shared.redis_keys import keys
        from shared.settings import get_settings

        settings = get_settings()
        client = redis.Redis.from_url(redis_url)
        worker = stack.start_worker("worker", processes=1, threads=1)
        for trial in range(args.trials):
            client.delete(keys().failpoint("start.before_claim"))
            render = enqueue_render(
                RenderRequest(
                    user_id="u",
                    generation_id=f"trial-{trial}",
                    composition="Main",
                    width=1280,
                    height=720,
                    fps=30,
                    duration_in_frames=30,
                )
            )
            while worker.poll() is None:
                time.sleep(0.02)
            died = time.monotonic()
            worker = stack.start_worker("worker", processes=1, threads=1)
            while _status(renders.get(render.id)) == "pending":
                if time.monotonic() - died > 600:
                    print("render not redelivered within 10 minutes", file=sys.stderr)
                    return 1
                time.sleep(0.1)
            results.append(time.monotonic() - died)
            print(f"trial {trial + 1}: worker killed -> render started again in {results[-1]:.1f}s")
    finally:
        stack.close()
        _drop(namespace)
    print(
        f"redelivery after SIGKILL (heartbeat timeout {settings.broker_heartbeat_timeout_ms} ms, "
        f"maintenance chance {settings.broker_maintenance_chance}/1e6): "
        f"median {statistics.median(results):.1f}s, max {max(results):.1f}s "
        f"over {len(results)} trials"
    )
    return 0


def _status(render: Render | None) -> str:
    assert render is not None, "the enqueued render's row is gone"
    return render.status


def _drop(namespace: str) -> None:
    """Delete the run's keys once every process that could write them has stopped."""
    from shared.settings import get_settings

    drop_namespace(get_settings().redis_url, namespace)


if __name__ == "__main__":
    sys.exit(main())
