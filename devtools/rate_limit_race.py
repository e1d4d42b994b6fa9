"""Race pyrate-limiter's stock RedisBucket against renderq's ExactRedisBucket.

``python -m devtools.rate_limit_race [--trials 20] [--processes 12] [--limit 5]`` starts N
processes that try to take permits for one key at the same instant and prints, per bucket,
how many trials admitted more than the limit. It needs a Redis at REDIS_URL and touches only
keys under ``rate-limit-race:``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import uuid
from typing import Any

import redis
from pyrate_limiter import Rate, RateItem, RedisBucket

from shared.redis_exact_bucket import ExactRedisBucket
from shared.settings import get_settings


def _worker(url: str, kind: str, key: str, limit: int, barrier: Any, results: Any) -> None:
    client = redis.Redis.from_url(url)
    rates = [Rate(limit, 60_000)]
    bucket: Any = (
        RedisBucket.init(rates, client, key)
        if kind == "stock"
        else ExactRedisBucket(rates, client, key)
    )
    barrier.wait()
    admitted = sum(bool(bucket.put(RateItem("u", time.time_ns() // 1_000_000))) for _ in range(3))
    results.put(admitted)


def race(url: str, kind: str, trials: int, processes: int, limit: int) -> list[int]:
    ctx = multiprocessing.get_context("fork")
    totals = []
    client = redis.Redis.from_url(url)
    for _ in range(trials):
        key = f"rate-limit-race:{uuid.uuid4().hex}"
        barrier, results = ctx.Barrier(processes), ctx.Queue()
        procs = [
            ctx.Process(target=_worker, args=(url, kind, key, limit, barrier, results))
            for _ in range(processes)
        ]
        for p in procs:
            p.start()
        totals.append(sum(results.get(timeout=30) for _ in procs))
        for p in procs:
            p.join(10)
        client.delete(key)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--processes", type=int, default=12)
    parser.add_argument("--limit", type=int, default=5)
    args = parser.parse_args()
    url = get_settings().redis_url
    print(f"{args.processes} processes x 3 attempts, limit {args.limit}, {args.trials} trials")
    for kind in ("stock", "exact"):
        totals = race(url, kind, args.trials, args.processes, args.limit)
        over = sum(t > args.limit for t in totals)
        print(
            f"{kind:>5}: {over}/{args.trials} trials over the limit; admitted per trial: "
            f"min {min(totals)}, max {max(totals)}"
        )


if __name__ == "__main__":
    main()
