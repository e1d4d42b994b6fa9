"""Spawned helper processes of ``python -m devtools.bench``: the bare baselines and set-up.

The bare-boto3 ceiling (``invoke_worker``), the bare-PostgreSQL ceiling (``update_worker``)
and the bare-webhook ceiling (``post_worker``) that the lifecycle floors and the poll sweep are
compared with, and ``start_inflight_worker``, which puts renders in flight quickly for the
poll sweep. ``Helpers`` runs them in processes started with ``spawn`` and stops them on Ctrl-C
or an error.

Functions that run in ``spawn``-ed helper processes live at module level and import product
code lazily, so a child only pays for what it uses (this module imports nothing but the
standard library at the top).
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------------------
# Helper processes (spawned; module-level so that ``spawn`` can import them)
# --------------------------------------------------------------------------------------


def _lambda_config(threads: int) -> Any:
    """The boto3 config renderq's ``RenderLambda`` uses (no retries, pool for the threads)."""
    from botocore.config import Config

    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=max(10, threads * 2),
        tcp_keepalive=True,
    )


def _timed_threads(
    call: Any, items: list[Any], threads: int, ready: Any, go: Any, results: Any
) -> None:
    """Report ready, wait for go, then ``threads`` threads ``call`` every item once; puts
    (started, ended, count, failures) on ``results``."""
    ready.put(os.getpid())
    go.wait()
    counter = itertools.count()
    failures: list[int] = []

    def loop() -> None:
        while (i := next(counter)) < len(items):
            if not call(items[i]):
                failures.append(i)

    started = time.time()
    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    results.put((started, time.time(), len(items), len(failures)))


def invoke_worker(
    function_name: str,
    payloads: list[str],
    threads: int,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """One process of the bare-boto3 ceiling: ``threads`` threads sharing one reused Lambda
    client, each invoking status payloads until the process's share is done."""
    import boto3

    session = boto3.Session(
        aws_access_key_id=os.environ["REMOTION_AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["REMOTION_AWS_SECRET_ACCESS_KEY"],
        region_name=os.environ.get("REMOTION_AWS_REGION", "us-east-1"),
    )
    client = session.client("lambda", config=_lambda_config(threads))

    def call(payload: str) -> bool:
        try:
            response = client.invoke(FunctionName=function_name, Payload=payload)
            response["Payload"].read()
            return True
        except Exception:
            return False

    # Open the connection pool first: renderq's worker processes are warm too.
    warm = [threading.Thread(target=call, args=(payloads[0],)) for _ in range(threads)]
    for thread in warm:
        thread.start()
    for thread in warm:
        thread.join()
    _timed_threads(call, payloads, threads, ready, go, results)


def update_worker(
    database_url: str, render_ids: list[str], threads: int, ready: Any, go: Any, results: Any
) -> None:
    """One process of the bare-PostgreSQL ceiling: ``threads`` threads, each with its own
    psycopg connection, committing one guarded single-row UPDATE per render id: the shape of
    a claim or a ``pending -> rendering`` write, without SQLAlchemy or renderq around it."""
    import psycopg

    from shared.db import normalize_url

    dsn = normalize_url(database_url).replace("postgresql+psycopg://", "postgresql://", 1)
    conns = [psycopg.connect(dsn) for _ in range(threads)]
    sql = "UPDATE render SET updated_at = now() WHERE id = %s AND status = %s"
    for conn in conns:  # prepared and warm, like a pooled connection in a worker
        for _ in range(6):
            conn.execute(sql, (render_ids[0], "complete"), prepare=True)
            conn.commit()
    ready.put(os.getpid())
    go.wait()
    shares = [render_ids[i::threads] for i in range(threads)]

    def loop(conn: Any, ids: list[str]) -> None:
        for render_id in ids:
            conn.execute(sql, (render_id, "complete"), prepare=True)
            conn.commit()

    started = time.time()
    workers = [
        threading.Thread(target=loop, args=(conn, ids))
        for conn, ids in zip(conns, shares, strict=True)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    ended = time.time()
    for conn in conns:
        conn.close()
    results.put((started, ended, len(render_ids), 0))


def post_worker(
    url: str, bodies: list[bytes], threads: int, ready: Any, go: Any, results: Any
) -> None:
    """One process of the bare-webhook ceiling: ``threads`` threads POSTing signed bodies,
    each over a new connection as every Remotion function sends its one webhook (the
    emulator's ``devtools.emulator.webhooks.post`` does the same)."""
    import hashlib
    import hmac
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    secret = b"bench-floor-secret"

    def call(body: bytes) -> bool:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        try:
            mac = hmac.new(secret, body, hashlib.sha512).hexdigest()
            connection.request(
                "POST",
                parts.path,
                body,
                {
                    "Content-Type": "application/json",
                    "X-Remotion-Mode": "production",
                    "X-Remotion-Signature": f"sha512={mac}",
                    "X-Remotion-Status": "200",
                },
            )
            response = connection.getresponse()
            response.read()
            return 200 <= response.status < 300
        except OSError:
            return False
        finally:
            connection.close()

    call(bodies[0])
    _timed_threads(call, bodies, threads, ready, go, results)


def start_inflight_worker(render_ids: list[str], threads: int, results: Any) -> None:
    """Put pending renders in flight quickly, for the poll-sweep measurement: Lambda ``start``
    through renderq's own client (the real payload, with the render's deterministic
    ``outName``), then ``repository.mark_rendering``.

    The start claim is skipped: nothing else competes for these renders, and the claim's two
    extra transactions (each a commit, i.e. a WAL flush on PostgreSQL) would triple the set-up
    time of 10,000 renders. ``mark_rendering`` with no token matches the unclaimed row
    (``claim_token IS NULL``); should the product ever refuse that, the claim is taken first.
    """
    from concurrent.futures import ThreadPoolExecutor

    from shared import renders, repository
    from shared.errors import IllegalTransition
    from shared.render_plan import chunking_for
    from shared.settings import get_settings
    from worker.lambda_client import get_lambda

    settings = get_settings()
    lam = get_lambda()
    rows = {row.id: row for row in renders.get_many(render_ids)}

    def one(render_id: str) -> bool:
        try:
            row = rows[render_id]
            started = lam.start(
                composition=row.composition,
                input_props=row.input_props,
                codec=row.codec,
                width=row.width,
                height=row.height,
                fps=row.fps,
                duration_in_frames=row.duration_in_frames,
                # Set at insert; the fallback is the name insert gives (attempt 1).
                out_name=row.out_name or repository.out_name(row.id, row.attempts, row.codec),
                frames_per_lambda=chunking_for(row.duration_in_frames).frames_per_lambda,
            )
            try:
                repository.mark_rendering(
                    render_id,
                    None,  # type: ignore[arg-type]  # no token: the unclaimed row (see above)
                    started.render_id,
                    started.bucket,
                )
            except IllegalTransition:
                token = uuid.uuid4().hex
                if repository.claim_start(render_id, token, settings.claim_lease_s) is None:
                    return False
                repository.mark_rendering(render_id, token, started.render_id, started.bucket)
            return True
        except Exception as exc:
            print(f"start_inflight: {render_id}: {exc!r}", file=sys.stderr)
            return False

    with ThreadPoolExecutor(threads) as pool:
        failed = sum(1 for ok in pool.map(one, render_ids) if not ok)
    results.put(failed)


def _collect(queue: Any, procs: list[Any], count: int, timeout: float) -> list[Any]:
    """``count`` items from ``queue``; fails fast if every helper died instead of waiting
    for the whole timeout."""
    import queue as queue_module

    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        try:
            out.append(queue.get(timeout=0.5))
        except queue_module.Empty:
            if all(not proc.is_alive() for proc in procs):
                codes = [proc.exitcode for proc in procs]
                raise RuntimeError(f"helper processes exited early (exit codes {codes})") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"helper processes gave no result in {timeout:g}s") from None
    return out


@dataclass
class Helpers:
    """Spawned helper processes, so that Ctrl-C (or an error) can stop them."""

    live: list[Any] = field(default_factory=list)

    def context(self) -> Any:
        import multiprocessing

        return multiprocessing.get_context("spawn")

    def run_processes(
        self, target: Any, arg_lists: list[tuple[Any, ...]], timeout: float
    ) -> list[Any]:
        """Run one process per argument tuple; each puts exactly one result on the queue
        passed as its last argument."""
        ctx = self.context()
        results = ctx.Queue()
        procs = [ctx.Process(target=target, args=(*args, results)) for args in arg_lists]
        self.live += procs
        for proc in procs:
            proc.start()
        try:
            return _collect(results, procs, len(procs), timeout)
        finally:
            self.stop(procs)

    def bare_invoke(
        self, function_name: str, payloads: list[str], processes: int, threads: int
    ) -> dict[str, Any]:
        """Calls/s of P processes x T threads of bare ``lambda.invoke`` over ``payloads``."""
        return self._timed(
            invoke_worker,
            [(function_name, payloads[i::processes], threads) for i in range(processes)],
            "calls",
        )

    def bare_updates(
        self, database_url: str, render_ids: list[str], processes: int, threads: int
    ) -> dict[str, Any]:
        """Committed single-row UPDATEs/s of P processes x T threads of bare psycopg."""
        return self._timed(
            update_worker,
            [(database_url, render_ids[i::processes], threads) for i in range(processes)],
            "commits",
        )

    def bare_posts(
        self, url: str, bodies: list[bytes], processes: int, threads: int
    ) -> dict[str, Any]:
        """Webhook POSTs/s of P processes x T threads, one new connection each."""
        return self._timed(
            post_worker,
            [(url, bodies[i::processes], threads) for i in range(processes)],
            "posts",
        )

    def _timed(self, target: Any, arg_lists: list[tuple[Any, ...]], unit: str) -> dict[str, Any]:
        """Start one process per argument tuple, let them all begin at once, and return the
        combined rate: each process puts (started, ended, count, errors) on its queue."""
        ctx = self.context()
        ready, go, results = ctx.Queue(), ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=target, args=(*a, ready, go, results)) for a in arg_lists]
        self.live += procs
        for proc in procs:
            proc.start()
        try:
            _collect(ready, procs, len(procs), 120)
            go.set()
            outcomes = _collect(results, procs, len(procs), 900)
        finally:
            self.stop(procs)
        started = min(o[0] for o in outcomes)
        ended = max(o[1] for o in outcomes)
        count = sum(o[2] for o in outcomes)
        return {
            unit: count,
            "errors": sum(o[3] for o in outcomes),
            "seconds": round(ended - started, 3),
            f"{unit}_per_s": round(count / (ended - started), 1),
        }

    def stop(self, procs: list[Any]) -> None:
        for proc in procs:
            if proc.pid is None:  # never started
                if proc in self.live:
                    self.live.remove(proc)
                continue
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            if proc in self.live:
                self.live.remove(proc)

    def stop_all(self) -> None:
        self.stop(list(self.live))
