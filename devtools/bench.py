"""``python -m devtools.bench``: renderq's performance figures, each next to a bare baseline.

Why it is built this way:

* **Ratios, not absolute times.** It runs on shared 2-core machines whose speed changes from run
  to run. Each throughput figure is measured in the same run as the bare tool underneath it
  (Dramatiq with a no-op actor; boto3 ``invoke`` against the same emulator), and the ratio is
  what may be compared across runs and machines. Latencies are compared with fixed targets.
* **Real processes.** Redis (the one at ``REDIS_URL``, or a private one), SQLite and PostgreSQL
  databases of its own, the Lambda emulator, ``dramatiq worker.actors`` worker processes and the
  scheduler, wired by environment exactly like ``devtools.demo`` and production.
* **Nothing left behind.** Every section uses its own Redis namespace (deleted afterwards) and its
  own database (a SQLite file, or ``renderq_bench_<pid>_<n>`` on PostgreSQL, dropped afterwards);
  every process it starts is stopped, on Ctrl-C and SIGTERM too.

Sections (``--only`` takes a comma-separated subset; ``lifecycle`` also runs ``bare`` because its
figure is a ratio to it, ``memory`` runs ``lifecycle`` if nothing else started workers):

``bare``                bare Dramatiq drain rate (messages/s), no-op actor, same broker settings
``lifecycle``           renders/s from ``enqueue_renders`` to ``complete`` (SQLite, PostgreSQL)
``start_latency``       enqueue -> Lambda ``start`` at the emulator, at a paced 100 renders/s
``completion_latency``  done at the emulator -> ``complete`` in the database, default interval
``poll_sweep``          one sweep over N renders in flight vs bare boto3 ``invoke`` calls/s
``enqueue``             producer renders/s, one at a time and in batches
``throttle``            rate-limit middleware cost per message (in-process, real Redis)
``memory``              peak RSS (VmHWM) of every ``dramatiq`` worker process of the runs above

It prints a table and a "targets" table and writes everything, with the machine and the
settings of each figure, to ``--out`` (JSON). It is a script that prints figures, never a timed
test: the smoke test only checks that it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

from devtools.bench_support import (
    NOOP_ACTOR,
    NOOP_QUEUE,
    BenchStack,
    Helpers,
    Postgres,
    busy_fraction,
    cpu_seconds,
    drop_namespace,
    emulator_call,
    kill_leftovers,
    machine_cpu,
    machine_info,
    new_sqlite,
    percentile,
    product_env,
    remove_sqlite,
    start_inflight_worker,
    summarize_ms,
)
from devtools.devstack import ROOT, free_port, wait_for

SECTIONS = (
    "bare",
    "lifecycle",
    "start_latency",
    "completion_latency",
    "poll_sweep",
    "enqueue",
    "throttle",
    "memory",
)
REQUIRES = {"lifecycle": ("bare",), "memory": ("lifecycle",)}
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
    latency_rate: float = 100.0
    latency_seconds: float = 15.0
    latency_warmup_s: float = 1.0
    sweep_sizes: tuple[int, ...] = (1_000, 10_000)
    sweep_status_delay_ms: float = 50.0
    enqueue_single: int = 1_000
    enqueue_batched: int = 10_000
    enqueue_batch: int = 500
    throttle_samples: int = 5_000


QUICK = Sizes(
    bare_messages=1_000,
    lifecycle_renders=100,
    latency_rate=50.0,
    latency_seconds=2.0,
    latency_warmup_s=0.5,
    sweep_sizes=(100, 300),
    enqueue_single=100,
    enqueue_batched=1_000,
    throttle_samples=300,
)


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def make_request(i: int, *, tag: str, frames: int = 30, users: int = 20) -> Any:
    """A small, valid request (720p, 1 s at 30 fps by default) spread over ``users`` users."""
    from shared.render_request import RenderRequest

    return RenderRequest(
        user_id=f"bench-user-{i % users}",
        generation_id=f"bench-{tag}-{i}",
        composition="Bench",
        input_props={"title": f"bench {i}"},
        width=1280,
        height=720,
        fps=30,
        duration_in_frames=frames,
    )


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def fetch_rows() -> list[dict[str, Any]]:
    """Every render of the section's database with the timestamps the figures need."""
    import sqlalchemy as sa

    from shared.db import get_engine
    from shared.models import Render

    table = Render.__table__  # type: ignore[attr-defined]
    names = (
        "id",
        "status",
        "error_code",
        "out_name",
        "lambda_render_id",
        "lambda_bucket",
        "created_at",
        "started_at",
        "completed_at",
        "last_polled_at",
    )
    with get_engine().connect() as conn:
        rows = conn.execute(sa.select(*(table.c[name] for name in names))).all()
    return [
        {
            "id": r[0],
            "status": str(r[1]),
            "error_code": r[2],
            "out_name": r[3],
            "lambda_render_id": r[4],
            "lambda_bucket": r[5],
            "created_at": _epoch(r[6]),
            "started_at": _epoch(r[7]),
            "completed_at": _epoch(r[8]),
            "last_polled_at": _epoch(r[9]),
        }
        for r in rows
    ]


def terminal_count() -> int:
    from shared import renders

    counts = renders.count_by_status()
    return counts.get("complete", 0) + counts.get("failed", 0)


def cpu_note(fig: dict[str, Any], unit: str) -> str:
    return (
        f"worker CPU {fig['worker_cpu_ms_per_unit']:.2f} ms/{unit}, "
        f"machine busy {fig['machine_busy_fraction']:.0%}"
    )


def fmt_rate(value: float | None, unit: str = "/s") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


# --------------------------------------------------------------------------------------
# One run: emulator, workers, scheduler, namespace, environment
# --------------------------------------------------------------------------------------


class Run:
    """The processes, Redis namespace and environment of one measurement.

    Entering sets the environment for the in-process product code (producer, repository) and
    for every child; leaving records the workers' peak RSS, stops everything and deletes the
    namespace, so the next run starts from nothing.
    """

    def __init__(
        self,
        bench: Bench,
        name: str,
        database_url: str,
        *,
        settings: dict[str, str] | None = None,
        emulator_args: Sequence[str] | None = None,
    ) -> None:
        self.bench = bench
        self.name = name
        self.namespace = f"renderq-bench-{os.getpid()}-{name}-{uuid.uuid4().hex[:6]}"
        bench.namespaces.append(self.namespace)
        self.stack = BenchStack(log_dir=bench.run_dir / name)
        self.emulator_args = emulator_args
        self.emulator_url: str | None = None
        self.worker: Any = None
        self.scheduler: Any = None
        self.emulator_proc: Any = None
        self.env = {
            "REDIS_URL": bench.redis_url,
            "REDIS_NAMESPACE": self.namespace,
            "DATABASE_URL": database_url,
            "REMOTION_AWS_ACCESS_KEY_ID": "AKIABENCHBENCHBENCH0",
            "REMOTION_AWS_SECRET_ACCESS_KEY": "bench-secret-not-a-real-key-00000000000000",
            "REMOTION_SERVE_URL": "https://example.invalid/sites/bench/index.html",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": bench.args.log_level,
            # Metrics stay on (the production default, so their cost is measured), on a port
            # of this run's own so that another worker on the machine cannot collide with it,
            # and with samples under the run directory, which is removed afterwards.
            "METRICS_PORT": str(free_port()),
            "METRICS_HOST": "127.0.0.1",
            "METRICS_DIR": str(bench.run_dir / name / "metrics"),
            **(settings or {}),
        }
        self._env: contextlib.ExitStack | None = None

    def __enter__(self) -> Run:
        self.bench.active_runs.append(self)
        if self.emulator_args is not None:
            self.emulator_url = self.stack.start_emulator(*self.emulator_args)
            self.emulator_proc = self.stack.processes[-1][1]
            self.env["AWS_ENDPOINT_URL_LAMBDA"] = self.emulator_url
            # The emulator serves Remotion's S3 bucket too (start recovery looks there).
            self.env["AWS_ENDPOINT_URL_S3"] = self.emulator_url
        self.stack.env.update(self.env)
        self._env = contextlib.ExitStack()
        self._env.enter_context(product_env(self.env))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self not in self.bench.active_runs:
            return
        self.bench.active_runs.remove(self)
        try:
            with contextlib.suppress(Exception):  # a reading is not worth a leaked process
                self.record_rss()
            self.stack.close()
        finally:
            if self._env is not None:
                self._env.close()
            with contextlib.suppress(Exception):
                drop_namespace(self.bench.redis_url, self.namespace)

    def start_workers(self) -> None:
        """``dramatiq worker.actors -p P -t T``; returns once every process has booted, so
        boot time is never part of a figure."""
        import redis

        p = self.bench.args.processes
        self.worker = self.stack.start_dramatiq(
            "worker", "worker.actors", processes=p, threads=self.bench.args.threads
        )
        client = redis.Redis.from_url(self.bench.redis_url)
        log_path = self.stack.log_dir / "worker.log"

        def ready() -> bool:
            if self.worker.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.worker.returncode}:\n"
                    + self.stack.log_tail("worker")
                )
            heartbeats = int(client.hlen(f"{self.namespace}:workers"))
            booted = log_path.read_text(errors="replace").count("ready for action")
            return heartbeats >= p or booted >= p

        try:
            wait_for(ready, timeout=90, interval=0.1, what=f"{p} worker processes to boot")
        finally:
            client.close()

    def start_scheduler(self) -> None:
        self.scheduler = self.stack.spawn("scheduler", [sys.executable, "-m", "worker.scheduler"])

    def record_rss(self) -> None:
        """VmHWM only grows while a process lives, so the last reading is the run's peak."""
        if self.worker is not None and self.worker.poll() is None:
            self.bench.rss[self.name] = {"run": self.name, **self.stack.worker_rss(self.worker)}

    def stop_workers(self) -> None:
        """Scheduler first (no new sweeps), then the workers; the emulator stays up."""
        self.record_rss()
        if self.scheduler is not None:
            self.stack.stop(self.scheduler)
            self.scheduler = None
        if self.worker is not None:
            self.stack.stop(self.worker)
            self.worker = None

    def cpu_snapshot(self) -> dict[str, Any]:
        return {
            "worker": self.stack.group_cpu(self.worker) if self.worker is not None else 0.0,
            "emulator": cpu_seconds([self.emulator_proc.pid]) if self.emulator_proc else 0.0,
            "machine": machine_cpu(),
        }

    @staticmethod
    def cpu_figures(before: dict[str, Any], after: dict[str, Any], units: int) -> dict[str, Any]:
        """CPU per unit of work: unlike wall time, barely affected by what else runs on a
        shared machine; the machine's busy share says how contended the run was."""
        return {
            "worker_cpu_ms_per_unit": round(1000 * (after["worker"] - before["worker"]) / units, 3),
            "emulator_cpu_ms_per_unit": round(
                1000 * (after["emulator"] - before["emulator"]) / units, 3
            ),
            "machine_busy_fraction": busy_fraction(before["machine"], after["machine"]),
        }

    def emulator_stats(self) -> dict[str, Any]:
        assert self.emulator_url is not None
        stats: dict[str, Any] = emulator_call(self.emulator_url, "/_emulator/stats")
        return stats


def _median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median ratio (the lower middle one for an even count), with every
    run's ratio attached and the first run's floor (measured once)."""
    ordered = sorted(results, key=lambda r: r["ratio_to_bare"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["ratio_each_run"] = [r["ratio_to_bare"] for r in results]
    if "floor" in results[0]:
        chosen["floor"] = results[0]["floor"]
    return chosen


# --------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------


@dataclass
class Bench:
    """One invocation: shared services (Redis, the PostgreSQL server), the results, and
    everything to clean up. Sections add figures to ``sections`` (JSON) and ``rows``
    (printed table); ``evaluate_targets`` compares them with the performance issue's targets."""

    args: argparse.Namespace
    sizes: Sizes
    selected: list[str]
    run_dir: Path
    redis_url: str = ""
    base_stack: BenchStack | None = None
    pg: Postgres | None = None
    pg_version: str | None = None
    pg_error: str | None = None
    helpers: Helpers = field(default_factory=Helpers)
    active_runs: list[Run] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    #: Worker peak RSS per run (the last reading before its workers stopped).
    rss: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Every Redis namespace used, deleted once more at the very end.
    namespaces: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    bare_rate: float = math.nan
    poll_concurrency: int = 16
    poll_interval_for_target: float = 2.0

    # -- set-up and teardown --------------------------------------------------------------

    def prepare(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.base_stack = BenchStack(log_dir=self.run_dir / "base")
        self.redis_url = self.base_stack.ensure_redis(
            os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        )
        postgres = Postgres(self.args.postgres_url)
        try:
            self.pg_version = postgres.probe()
            self.pg = postgres
        except Exception as exc:
            self.pg_error = f"PostgreSQL unreachable at {self.args.postgres_url}: {exc}"
            print(f"note: {self.pg_error}; PostgreSQL figures are skipped", file=sys.stderr)
        self.machine = machine_info(self.redis_url, self.pg_version)

    def cleanup(self) -> None:
        for run in list(self.active_runs):
            with contextlib.suppress(Exception):
                run.close()
        self.helpers.stop_all()
        for namespace in self.namespaces:
            with contextlib.suppress(Exception):
                drop_namespace(self.redis_url, namespace)
        if self.pg is not None:
            self.pg.drop_all()
        shutil.rmtree(self.run_dir / "db", ignore_errors=True)
        if self.base_stack is not None:
            self.base_stack.close()
        killed = kill_leftovers()
        if killed:
            print(f"note: killed {killed} leftover process group(s)", file=sys.stderr)

    def kinds(self) -> list[str]:
        return ["sqlite", "postgresql"] if self.pg is not None else ["sqlite"]

    def main_kind(self) -> str:
        """PostgreSQL (the production database) when reachable, else SQLite."""
        return "postgresql" if self.pg is not None else "sqlite"

    @contextlib.contextmanager
    def database(self, kind: str) -> Iterator[str]:
        if kind == "postgresql":
            assert self.pg is not None
            url = self.pg.create()
            try:
                yield url
            finally:
                self.pg.drop(url)
        else:
            url = new_sqlite(self.run_dir / "db")
            try:
                yield url
            finally:
                remove_sqlite(url)

    def row(self, figure: str, value: str, detail: str = "") -> None:
        self.rows.append((figure, value, detail))

    def worker_settings(self) -> dict[str, Any]:
        return {"processes": self.args.processes, "threads": self.args.threads}

    # -- sections -------------------------------------------------------------------------

    def run_section(self, name: str, fn: Callable[[], None]) -> None:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            fn()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            self.sections.setdefault(name, {})["error"] = self.errors[name]
            self.row(name, "ERROR", str(exc).splitlines()[0][:120] if str(exc) else repr(exc))
            traceback.print_exc()
        print(
            f"[bench] {name} done in {time.monotonic() - started:.1f}s",
            file=sys.stderr,
            flush=True,
        )

    def bare(self) -> None:
        """Enqueue N no-op messages, then start the workers; rate = messages drained between
        the first ack seen and the queue's message hash being empty (boot time excluded)."""
        n = self.sizes.bare_messages
        figures = self._measure_bare("bare")
        self.bare_rate = figures["messages_per_s"]
        self.sections["bare"] = {
            "runs": 1,
            "settings": {
                **self.worker_settings(),
                "messages": n,
                "broker": "dramatiq RedisBroker, default middleware, renderq heartbeat_timeout "
                "and maintenance_chance",
                "timing": "first ack seen -> message hash empty (polled every 2 ms)",
            },
            "figures": figures,
        }
        self.row(
            "bare dramatiq drain",
            fmt_rate(self.bare_rate, "msg/s"),
            f"no-op actor, {n:,} msgs, -p {self.args.processes} -t {self.args.threads}; "
            + cpu_note(figures, "msg"),
        )

    def _measure_bare(self, name: str) -> dict[str, Any]:
        import redis

        from shared.messages import enqueue_many, make_broker, new_message

        n = self.sizes.bare_messages
        # The no-op workers never open the database; the URL only completes the environment.
        with Run(self, name, f"sqlite:///{self.run_dir / 'unused.db'}") as run:
            broker = make_broker()
            messages = [new_message(NOOP_QUEUE, NOOP_ACTOR, [i]) for i in range(n)]
            for part in chunks(messages, 1_000):
                enqueue_many(broker, part)
            broker.client.connection_pool.disconnect()
            client = redis.Redis.from_url(self.redis_url)
            key = f"{run.namespace}:{NOOP_QUEUE}.msgs"
            assert client.hlen(key) == n, "not every no-op message was enqueued"
            run.worker = run.stack.start_dramatiq(
                "worker",
                "devtools.bench_noop",
                processes=self.args.processes,
                threads=self.args.threads,
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

    def lifecycle(self) -> None:
        """Renders/s from ``enqueue_renders`` to ``complete`` with nothing else limiting: the
        emulator finishes renders at once, rate limit and budget are out of the way, and
        POLL_INTERVAL is short, so what remains is renderq's own cost per render."""
        runs = self.args.runs
        all_runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in self.kinds()}
        bare_rates = [self.bare_rate]
        for i in range(runs):
            if i:
                # Each repetition re-measures its own baseline right before it: the ratio of
                # a pair taken minutes apart on a shared machine would mostly measure drift.
                self.bare_rate = self._measure_bare(f"bare-{i + 1}")["messages_per_s"]
                bare_rates.append(self.bare_rate)
            for kind in self.kinds():
                all_runs[kind].append(self._lifecycle_one(kind, with_floor=i == 0))
        figures = {kind: _median_run(results) for kind, results in all_runs.items()}
        if runs > 1:
            self.sections["bare"]["figures"]["messages_per_s_each_run"] = bare_rates
            self.row(
                "bare dramatiq drain (each run)",
                ", ".join(fmt_rate(rate) for rate in bare_rates),
                "the baseline of each lifecycle run, measured right before it",
            )
        interval = self.sizes.lifecycle_poll_interval_s
        self.sections["lifecycle"] = {
            "runs": runs,
            "settings": {
                **self.worker_settings(),
                "renders": self.sizes.lifecycle_renders,
                "enqueue": "enqueue_renders in batches of 500, 20 users",
                "emulator_speed_fps": 1e6,
                "frames": 30,
                "POLL_INTERVAL": interval,
                **UNLIMITED,
                "timing": "first enqueue_renders call -> last completed_at",
                "runs": f"{runs}; each run re-measures bare Dramatiq first; the figures are "
                "those of the run with the median ratio, the floor that of the first run",
            },
            "figures": figures,
        }
        for kind, fig in figures.items():
            self.row(
                f"lifecycle ({kind})",
                fmt_rate(fig["renders_per_s"], "renders/s"),
                f"{fig['renders']:,} renders, POLL_INTERVAL={interval:g}s, "
                f"failed={fig['failed']}; " + cpu_note(fig, "render"),
            )
        for kind, fig in figures.items():
            ratios = fig["ratio_each_run"]
            self.row(
                f"lifecycle / bare ratio ({kind})",
                f"{fig['ratio_to_bare']:.3f}",
                f"bare = {fmt_rate(fig['bare_msgs_per_s'], 'msg/s')} in the same run"
                if runs == 1
                else f"median of {runs} runs, each against its own bare run: "
                + ", ".join(f"{r:.3f}" for r in ratios),
            )
        for kind, fig in figures.items():
            if "floor" not in fig:
                continue
            floor = fig["floor"]
            self.row(
                f"lifecycle floor ({kind})",
                f"{fmt_rate(floor['renders_per_s'], 'renders/s')} = "
                f"{floor['ratio_to_bare']:.3f} x bare",
                "upper bound from parts measured alone: 2 bare boto3 invokes "
                f"({fmt_rate(floor['bare_invoke_calls_per_s'], 'calls/s')}) + 1 bare message + "
                f"2 bare committed UPDATEs ({fmt_rate(floor['bare_update_commits_per_s'], '/s')})",
            )

    def _lifecycle_one(self, kind: str, *, with_floor: bool = True) -> dict[str, Any]:
        from shared.producer import enqueue_renders

        n = self.sizes.lifecycle_renders
        settings = {**UNLIMITED, "POLL_INTERVAL": str(self.sizes.lifecycle_poll_interval_s)}
        with contextlib.ExitStack() as stack:
            db_url = stack.enter_context(self.database(kind))
            run = stack.enter_context(
                Run(
                    self,
                    f"lifecycle-{kind}",
                    db_url,
                    settings=settings,
                    emulator_args=("--speed", "1000000"),
                )
            )
            run.start_workers()
            run.start_scheduler()
            requests = [make_request(i, tag=f"life-{kind}") for i in range(n)]
            cpu_before = run.cpu_snapshot()
            t0 = time.time()
            for part in chunks(requests, 500):
                enqueue_renders(part)
            enqueued_s = time.time() - t0
            wait_for(
                lambda: terminal_count() >= n,
                timeout=120 + n / 5,
                interval=0.2,
                what=f"{n} renders to finish ({kind})",
            )
            cpu_after = run.cpu_snapshot()
            rows = fetch_rows()
            stats = run.emulator_stats()
            run.record_rss()
            floor = (
                self._lifecycle_floor(db_url, rows) if kind == "postgresql" and with_floor else None
            )
        ends = [r["completed_at"] for r in rows if r["completed_at"] is not None]
        seconds = max(ends) - t0
        rate = n / seconds
        failed = [r for r in rows if r["status"] == "failed"]
        return {
            "renders": n,
            "renders_per_s": round(rate, 1),
            "seconds": round(seconds, 3),
            "enqueue_seconds": round(enqueued_s, 3),
            "ratio_to_bare": round(rate / self.bare_rate, 4),
            "bare_msgs_per_s": round(self.bare_rate, 1),
            "failed": len(failed),
            "failed_codes": sorted({str(r["error_code"]) for r in failed}),
            "emulator_starts_total": stats.get("starts_total"),
            "emulator_status_calls": stats.get("status_calls"),
            **run.cpu_figures(cpu_before, cpu_after, n),
            **({"floor": floor} if floor else {}),
        }

    def _lifecycle_floor(self, db_url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """What a render cannot do without, each part measured alone at full speed on this
        machine with the same processes and threads: two Lambda invokes (a ``start`` and a
        ``status``) against the same emulator, one Dramatiq message (the bare rate), and two
        committed single-row UPDATEs (the claim and ``pending -> rendering``).

        Summing their per-unit machine time bounds the lifecycle rate from above: no rate
        limit, budget, logging, ORM, metrics or poll bookkeeping is counted. If this bound is
        under a target, no tuning of renderq's own code can meet that target here.
        """
        from remotion_lambda import RemotionClient, RenderMediaParams

        from shared.settings import get_settings

        product = get_settings()
        client = RemotionClient(
            region=product.remotion_aws_region,
            serve_url=product.remotion_serve_url,
            function_name=product.remotion_lambda_function_name,
        )
        payloads: list[str] = []
        for i, row in enumerate(rows):
            params = RenderMediaParams(
                composition="Main",
                input_props={"i": i},
                codec="h264",
                force_width=1280,
                force_height=720,
                force_fps=30,
                force_duration_in_frames=30,
                out_name=f"floor-{i}.mp4",
            )
            payloads.append(client.construct_render_request(params, render_type="video-or-audio"))
            status = (row["lambda_render_id"], row["lambda_bucket"])
            payloads.append(client.construct_render_progress_request(*status))
        p, t = self.args.processes, self.args.threads
        invoke = self.helpers.bare_invoke(product.remotion_lambda_function_name, payloads, p, t)
        ids = [r["id"] for r in rows] * 2
        updates = self.helpers.bare_updates(db_url, ids, p, t)
        per_render_s = 2 / invoke["calls_per_s"] + 1 / self.bare_rate + 2 / updates["commits_per_s"]
        rate = 1 / per_render_s
        return {
            "renders_per_s": round(rate, 1),
            "ratio_to_bare": round(rate / self.bare_rate, 4),
            "bare_invoke_calls_per_s": invoke["calls_per_s"],
            "bare_invoke_errors": invoke["errors"],
            "bare_update_commits_per_s": updates["commits_per_s"],
            "bare_dramatiq_msgs_per_s": round(self.bare_rate, 1),
            "per_render": "2 invokes (start + status) + 1 message + 2 committed UPDATEs",
        }

    def latency(self) -> None:
        """Start and completion latency from one paced run (the default 2 s poll interval)."""
        from shared.producer import enqueue_render

        kind = self.main_kind()
        rate, seconds = self.sizes.latency_rate, self.sizes.latency_seconds
        n_warm = int(rate * self.sizes.latency_warmup_s)
        n = int(rate * seconds)
        speed, poll_interval = 60.0, 2.0

        # Render lengths spread over 1-5 s (60-300 frames at 60 fps), so that renders finish at
        # every point of their poll period, as real ones do; equal lengths would all finish at
        # the same point and make the figure depend on that coincidence.
        def frames_of(i: int) -> int:
            return 60 + (i * 97) % 241

        settings = {**UNLIMITED, "POLL_INTERVAL": str(poll_interval)}
        with contextlib.ExitStack() as stack:
            db_url = stack.enter_context(self.database(kind))
            run = stack.enter_context(
                Run(
                    self,
                    "latency",
                    db_url,
                    settings=settings,
                    emulator_args=("--speed", str(speed)),
                )
            )
            run.start_workers()
            run.start_scheduler()
            requests = [make_request(i, tag="lat", frames=frames_of(i)) for i in range(n_warm + n)]
            # (index, render id, scheduled, called, returned), epoch seconds.
            calls: list[tuple[int, str, float, float, float]] = []

            def produce(i: int, scheduled: float) -> None:
                called = time.time()
                render = enqueue_render(requests[i])
                calls.append((i, render.id, scheduled, called, time.time()))

            # A pool, so that one slow producer call does not delay the next ones: the
            # arrival rate stays what was asked for, like many web requests would.
            with ThreadPoolExecutor(16, thread_name_prefix="producer") as pool:
                begin, begin_epoch = time.monotonic(), time.time()
                futures = []
                for i in range(len(requests)):
                    delay = begin + i / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    futures.append(pool.submit(produce, i, begin_epoch + i / rate))
                for future in futures:
                    future.result()
            produced_s = time.monotonic() - begin
            calls.sort()
            late = sum(1 for c in calls if c[3] - c[2] > 0.05)
            wait_for(
                lambda: terminal_count() >= len(requests),
                # Generous: when starts cannot keep up with the pace, the backlog drains late.
                timeout=120 + len(requests) / 10,
                interval=0.25,
                what="paced renders to finish",
            )
            rows = {r["id"]: r for r in fetch_rows()}
            stats = run.emulator_stats()
            run.record_rss()
        starts = stats.get("start_times_by_out_name", {})
        start_lat: list[float] = []
        done_lat: list[float] = []
        missing = 0
        for i, render_id, _scheduled, called, _returned in calls[n_warm:]:
            row = rows.get(render_id, {})
            out_name = row.get("out_name") or f"{render_id}-1.mp4"
            times = starts.get(out_name)
            if not times:
                missing += 1
                continue
            start_lat.append(times[0] - called)
            if row.get("status") == "complete" and row.get("completed_at"):
                done_lat.append(row["completed_at"] - (times[0] + frames_of(i) / speed))
        producer_ms = [(ret - called) for *_, called, ret in calls[n_warm:]]
        common = {
            **self.worker_settings(),
            "database": kind,
            "paced_rate_per_s": rate,
            "measured_seconds": seconds,
            "warmup_renders_excluded": n_warm,
            "producer": "16 threads; each enqueue_render call starts at its scheduled time "
            "if a thread is free",
            "achieved_rate_per_s": round(len(requests) / produced_s, 1),
            "producer_calls_started_over_50ms_late": late,
            **UNLIMITED,
        }
        first_starts = sorted(times[0] for times in starts.values() if times)
        start_fig = {
            **summarize_ms(start_lat),
            "renders": n,
            "not_started": missing,
            "producer_call_p50_ms": round(percentile(producer_ms, 50) * 1000, 3),
            # Below the arrival rate, a backlog builds and latency grows with the run's length.
            "starts_per_s": round((len(first_starts) - 1) / (first_starts[-1] - first_starts[0]), 1)
            if len(first_starts) > 1
            else None,
        }
        self.sections["start_latency"] = {
            "runs": 1,
            "settings": {
                **common,
                "POLL_INTERVAL": poll_interval,
                "timing": "time.time() before enqueue_render -> emulator start time of the "
                "render's outName",
            },
            "figures": start_fig,
        }
        done_fig = {**summarize_ms(done_lat), "renders": len(done_lat)}
        self.sections["completion_latency"] = {
            "runs": 1,
            "settings": {
                **common,
                "POLL_INTERVAL": poll_interval,
                "emulator_speed_fps": speed,
                "frames": "60-300 (1-5 s), spread evenly",
                "timing": "completed_at - (emulator start time + frames / speed)",
            },
            "figures": done_fig,
        }
        self.poll_interval_for_target = poll_interval
        self.row(
            "start latency p50 / p95 / p99",
            f"{start_fig['p50_ms']:.1f} / {start_fig['p95_ms']:.1f} / {start_fig['p99_ms']:.1f} ms",
            f"{kind}, paced {rate:g}/s for {seconds:g}s ({n:,} renders), achieved "
            f"{common['achieved_rate_per_s']:g}/s; starts ran at {start_fig['starts_per_s']}/s",
        )
        self.row(
            "completion latency p50 / p99",
            f"{done_fig['p50_ms']:.0f} / {done_fig['p99_ms']:.0f} ms",
            f"{kind}, POLL_INTERVAL={poll_interval:g}s, renders of 60-300 frames at {speed:g} fps",
        )

    def poll_sweep(self) -> None:
        """One sweep over N renders in flight whose progress calls take 50 ms, against the
        ceiling: the same calls made by bare boto3 with the same concurrency."""
        kind = self.main_kind()
        figures = {str(n): self._sweep_one(kind, n) for n in self.sizes.sweep_sizes}
        self.sections["poll_sweep"] = {
            "runs": 1,
            "settings": {
                **self.worker_settings(),
                "database": kind,
                "status_delay_ms": self.sizes.sweep_status_delay_ms,
                "POLL_INTERVAL": 2.0,
                "POLL_BATCH_SIZE": "default (100)",
                "POLL_CONCURRENCY": self.poll_concurrency,
                "RENDER_TIMEOUT": 86400,
                "in_flight_setup": "repository.insert_pending_many, then per render "
                "RenderLambda.start (real payload and outName) + repository.mark_rendering "
                f"from {self.args.processes} helper processes x 8 threads (no queue, no "
                "claim); not timed",
                "emulator": "--speed 0.01 --function-timeout-s 86400: renders never finish",
                "sweep_timing": "poll sweep record: planned_at -> last batch finished",
                "bare": f"{self.args.processes} processes x POLL_CONCURRENCY threads, one "
                "reused boto3 client per process, status payloads of the same renders",
            },
            "figures": figures,
        }
        for n, fig in figures.items():
            label = f"{int(n):,} in flight"
            self.row(
                f"poll sweep ({label})",
                f"{fig['sweep_seconds']:.2f} s = {fmt_rate(fig['renders_per_s'], 'renders/s')}",
                f"{kind}, status delay {self.sizes.sweep_status_delay_ms:g} ms, "
                f"polled once: {fig['polled_once']:,}/{int(n):,}, status calls by the sweep's "
                f"end: {fig['emulator_status_calls_at_sweep_end']:,}; " + cpu_note(fig, "poll"),
            )
            self.row(
                f"bare boto3 invoke ({label})",
                fmt_rate(fig["bare_calls_per_s"], "calls/s"),
                f"{self.args.processes} x {self.poll_concurrency} threads, same emulator",
            )
            self.row(f"poll sweep / bare ratio ({label})", f"{fig['ratio_to_bare']:.3f}", "")

    def _sweep_one(self, kind: str, n: int) -> dict[str, Any]:
        from remotion_lambda import RemotionClient

        from shared import repository
        from shared.settings import get_settings
        from worker.poller import last_sweep

        settings = {**UNLIMITED, "POLL_INTERVAL": "2", "RENDER_TIMEOUT": "86400"}
        emulator_args = (
            "--speed",
            "0.01",
            "--function-timeout-s",
            "86400",
            "--status-delay-ms",
            str(self.sizes.sweep_status_delay_ms),
        )
        with contextlib.ExitStack() as stack:
            db_url = stack.enter_context(self.database(kind))
            run = stack.enter_context(
                Run(self, f"sweep-{n}", db_url, settings=settings, emulator_args=emulator_args)
            )
            product = get_settings()
            self.poll_concurrency = product.poll_concurrency
            ids = [str(uuid.uuid4()) for _ in range(n)]
            requests = [make_request(i, tag=f"sweep-{n}") for i in range(n)]
            setup_started = time.monotonic()
            for part in chunks(list(zip(ids, requests, strict=True)), 1_000):
                repository.insert_pending_many(part)
            p = self.args.processes
            failed = self.helpers.run_processes(
                start_inflight_worker, [(ids[i::p], 8) for i in range(p)], timeout=900
            )
            setup_s = time.monotonic() - setup_started
            rendering = sum(1 for r in fetch_rows() if r["status"] == "rendering")
            if rendering != n:
                raise RuntimeError(f"only {rendering}/{n} renders in flight ({sum(failed)} failed)")
            run.start_workers()
            # A render is first polled one POLL_INTERVAL after its start: wait until the last
            # one set up is due, so the first sweep finds all N due at once.
            time.sleep(max(0.0, setup_started + setup_s + 2.1 - time.monotonic()))
            cpu_before = run.cpu_snapshot()
            scheduler_at = time.time()
            run.start_scheduler()

            def finished() -> dict[str, Any] | None:
                record: dict[str, Any] | None = last_sweep()
                if (
                    record
                    and int(record.get("renders", 0)) >= n
                    and float(record["planned_at"]) >= scheduler_at - 1
                ):
                    return record
                return None

            record = wait_for(
                finished, timeout=120 + n / 20, interval=0.1, what=f"a sweep over {n} renders"
            )
            cpu_after = run.cpu_snapshot()
            # More status calls than renders by the end of the first sweep means sweeps
            # overlapped (or a render was polled twice): wasted, billed Lambda calls.
            status_calls = run.emulator_stats().get("status_calls")
            run.stop_workers()
            rows = fetch_rows()
            polled = [r["last_polled_at"] for r in rows if r["last_polled_at"] is not None]
            client = RemotionClient(
                region=product.remotion_aws_region,
                serve_url=product.remotion_serve_url,
                function_name=product.remotion_lambda_function_name,
            )
            payloads = [
                client.construct_render_progress_request(r["lambda_render_id"], r["lambda_bucket"])
                for r in rows
            ]
            bare = self.helpers.bare_invoke(
                product.remotion_lambda_function_name, payloads, p, self.poll_concurrency
            )
        sweep_s = float(record["duration_s"])
        rate = n / sweep_s
        return {
            "renders": n,
            "setup_seconds": round(setup_s, 2),
            "sweep_seconds": round(sweep_s, 3),
            "renders_per_s": round(rate, 1),
            "polled_once": len(polled),
            "emulator_status_calls_at_sweep_end": status_calls,
            "sweep_record": record,
            "bare_calls_per_s": bare["calls_per_s"],
            "bare_seconds": bare["seconds"],
            "bare_errors": bare["errors"],
            "ratio_to_bare": round(rate / bare["calls_per_s"], 4),
            **run.cpu_figures(cpu_before, cpu_after, n),
        }

    def enqueue(self) -> None:
        """Producer throughput from one thread, no workers running: what a web service
        calling ``enqueue_render`` per request, or a bulk job batching, can push."""
        from shared.producer import enqueue_render, enqueue_renders

        figures: dict[str, Any] = {}
        single_n, batched_n = self.sizes.enqueue_single, self.sizes.enqueue_batched
        batch = self.sizes.enqueue_batch
        for kind in self.kinds():
            with contextlib.ExitStack() as stack:
                db_url = stack.enter_context(self.database(kind))
                stack.enter_context(Run(self, f"enqueue-{kind}", db_url))
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
            self.row(
                f"enqueue single ({kind})",
                fmt_rate(single_n / single_s, "renders/s"),
                f"enqueue_render x {single_n:,}, one producer thread",
            )
            self.row(
                f"enqueue batched ({kind})",
                fmt_rate(batched_n / batched_s, "renders/s"),
                f"enqueue_renders, batches of {batch}, {batched_n:,} renders",
            )
        self.sections["enqueue"] = {
            "runs": 1,
            "settings": {
                "producer_threads": 1,
                "batch_size": batch,
                "timing": "RenderRequest objects built before the clock starts",
            },
            "figures": figures,
        }

    def throttle(self) -> None:
        """``UserRateLimit.before_process_message`` + ``after_process_message`` in-process
        against real Redis; the message does not start a render, so the permit is refunded.
        The full path of a render that does start (+ ``confirm_permit`` + ``mark_started``,
        no refund) is measured too."""
        from shared.messages import new_message
        from worker.middleware.rate_limit import UserRateLimit, confirm_permit, mark_started

        n, users = self.sizes.throttle_samples, 50
        with contextlib.ExitStack() as stack:
            db_url = stack.enter_context(self.database("sqlite"))
            stack.enter_context(
                Run(self, "throttle", db_url, settings={"RENDER_RATE_LIMIT": "1000000/1s"})
            )
            actor = SimpleNamespace(
                options={"rate_limit_key": lambda message: message.args[0]["user_id"]}
            )
            broker = SimpleNamespace(get_actor=lambda _name: actor)
            middleware = UserRateLimit()

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
                if confirm_permit(msg) is not None:
                    refused += 1
                mark_started(msg)
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
        self.sections["throttle"] = {
            "runs": 1,
            "settings": {
                "measured": "UserRateLimit.before_process_message + after_process_message "
                "(permit acquired, then refunded), single thread, in-process, real Redis",
                "also_measured": "full permit path of a started render: before + "
                "confirm_permit + mark_started + after (no refund)",
                "users": users,
                "RENDER_RATE_LIMIT": "1000000/1s",
                "samples": n,
            },
            "figures": {"hooks": hooks_fig, "full_start_path": full_fig, "refused": refused},
        }
        self.row(
            "throttle overhead p50 / p99",
            f"{hooks_fig['p50_ms']:.3f} / {hooks_fig['p99_ms']:.3f} ms",
            f"before+after hooks (acquire+refund), {n:,} msgs, real Redis",
        )
        self.row(
            "throttle full start path p50 / p99",
            f"{full_fig['p50_ms']:.3f} / {full_fig['p99_ms']:.3f} ms",
            "before + confirm_permit + mark_started + after",
        )

    def memory(self) -> None:
        """Peak RSS of the worker processes of every run above (the bare baseline apart)."""
        bare = [r for r in self.rss.values() if r["run"].split("-")[0] == "bare"]
        renderq = [r for r in self.rss.values() if r not in bare]

        def peak(records: list[dict[str, Any]]) -> float | None:
            values = [v for r in records for v in r["workers_mb"].values()]
            return max(values) if values else None

        worst = peak(renderq)
        self.sections["memory"] = {
            "runs": len(renderq),
            "settings": {
                **self.worker_settings(),
                "measured": "VmHWM of every forked dramatiq worker process, read just before "
                "each run's workers are stopped (MB = 10^6 bytes)",
            },
            "figures": {
                "worker_peak_mb": worst,
                "bare_worker_peak_mb": peak(bare),
                "by_run": list(self.rss.values()),
            },
        }
        per_run = ", ".join(
            f"{r['run']}={max(r['workers_mb'].values()):.0f}" for r in renderq if r["workers_mb"]
        )
        self.row(
            "worker peak RSS (max)",
            "-" if worst is None else f"{worst:.1f} MB",
            per_run or "no renderq worker run",
        )
        if peak(bare) is not None:
            self.row("bare dramatiq worker peak RSS", f"{peak(bare):.1f} MB", "no-op actor")

    # -- targets --------------------------------------------------------------------------

    def evaluate_targets(self) -> None:
        quick = " (--quick sizes)" if self.args.quick else ""

        def add(target: str, measured: Any, ok: bool | None, shown: str) -> None:
            status = "not measured" if ok is None else ("met" if ok else "NOT met")
            self.targets.append(
                {"target": target + quick, "measured": measured, "shown": shown, "status": status}
            )

        def fig(section: str, *path: str) -> Any:
            value: Any = self.sections.get(section, {}).get("figures")
            for key in path:
                if not isinstance(value, dict) or key not in value:
                    return None
                value = value[key]
            return value

        ratio = fig("lifecycle", "postgresql", "ratio_to_bare")
        floor = fig("lifecycle", "postgresql", "floor", "ratio_to_bare")
        add(
            "lifecycle >= 0.10 x bare Dramatiq (postgresql)",
            ratio,
            None if ratio is None else ratio >= 0.10,
            "-"
            if ratio is None
            else f"{ratio:.3f} x" + ("" if floor is None else f" (floor {floor:.3f} x)"),
        )
        rate = self.sizes.latency_rate
        p99 = fig("start_latency", "p99_ms")
        achieved = self.sections.get("start_latency", {}).get("settings", {})
        add(
            f"start latency p99 <= 100 ms at {rate:g} renders/s",
            p99,
            None if p99 is None or math.isnan(p99) else p99 <= 100,
            "-"
            if p99 is None
            else f"{p99:.1f} ms (arrivals {achieved.get('achieved_rate_per_s', '?')}/s)",
        )
        p99 = fig("completion_latency", "p99_ms")
        limit = self.poll_interval_for_target * 1000 + 500
        add(
            f"completion latency p99 <= poll interval + 500 ms ({limit:.0f} ms)",
            p99,
            None if p99 is None or math.isnan(p99) else p99 <= limit,
            "-" if p99 is None else f"{p99:.0f} ms",
        )
        largest = str(max(self.sizes.sweep_sizes))
        ratio = fig("poll_sweep", largest, "ratio_to_bare")
        add(
            f"poll sweep >= 0.8 x bare boto3 invoke ({int(largest):,} in flight)",
            ratio,
            None if ratio is None else ratio >= 0.8,
            "-" if ratio is None else f"{ratio:.3f} x",
        )
        for kind in ("sqlite", "postgresql"):
            value = fig("enqueue", kind, "batched_renders_per_s")
            add(
                f"enqueue batched >= 1,000 renders/s ({kind})",
                value,
                None if value is None else value >= 1_000,
                fmt_rate(value, "renders/s"),
            )
        p99 = fig("throttle", "hooks", "p99_ms")
        add(
            "throttle overhead p99 <= 2 ms (middleware hooks)",
            p99,
            None if p99 is None else p99 <= 2,
            "-" if p99 is None else f"{p99:.3f} ms",
        )
        worst = fig("memory", "worker_peak_mb")
        add(
            "worker RSS <= 150 MB",
            worst,
            None if worst is None else worst <= 150,
            "-" if worst is None else f"{worst:.1f} MB",
        )

    # -- output ---------------------------------------------------------------------------

    def report(self, elapsed_s: float) -> dict[str, Any]:
        m = self.machine
        header = (
            f"renderq benchmark - {m.get('cores')} cores ({m.get('cpu_model')}), "
            f"{m.get('memory_total')}, Redis {m.get('redis_server')}, "
            f"PostgreSQL {m.get('postgres_server') or 'n/a'}, Python {m.get('python')}; "
            f"workers -p {self.args.processes} -t {self.args.threads}; each figure: 1 run"
            + (
                f" (lifecycle: median of {self.args.runs} paired runs)"
                if self.args.runs > 1
                else ""
            )
            + ("; --quick sizes" if self.args.quick else "")
        )
        print()
        print(header)
        print(f"load average at start {m.get('loadavg_at_start')}, end {list(os.getloadavg())}")
        print_table(("figure", "value", "settings / notes"), self.rows)
        print()
        print_table(
            ("target", "measured", "status"),
            [(t["target"], t["shown"], t["status"]) for t in self.targets],
        )
        print(f"\ntotal wall time {elapsed_s:.0f} s")
        self.machine["loadavg_at_end"] = list(os.getloadavg())
        return {
            "schema": 1,
            "pid": os.getpid(),
            "command": " ".join([Path(sys.executable).name, "-m", "devtools.bench", *sys.argv[1:]]),
            "started_at": datetime.fromtimestamp(time.time() - elapsed_s, UTC).isoformat(),
            "duration_s": round(elapsed_s, 1),
            "machine": self.machine,
            "options": {
                "quick": self.args.quick,
                "only": self.selected,
                "processes": self.args.processes,
                "threads": self.args.threads,
                "sizes": self.sizes.__dict__,
            },
            "sections": self.sections,
            "table": [{"figure": f, "value": v, "detail": d} for f, v, d in self.rows],
            "targets": self.targets,
            "errors": self.errors,
            "postgres_skipped": self.pg_error,
        }


def print_table(header: tuple[str, str, str], rows: Sequence[tuple[str, str, str]]) -> None:
    widths = [max([len(header[i]), *(len(r[i]) for r in rows)]) for i in range(3)]
    widths[2] = min(widths[2], 100)
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def resolve_sections(only: str | None) -> list[str]:
    if not only:
        return list(SECTIONS)
    wanted = {s.strip().replace("-", "_") for s in only.split(",") if s.strip()}
    unknown = wanted - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    changed = True
    while changed:
        changed = False
        for name in list(wanted):
            for needed in REQUIRES.get(name, ()):
                if needed not in wanted:
                    wanted.add(needed)
                    changed = True
    return [s for s in SECTIONS if s in wanted]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.bench",
        description="renderq benchmark: figures as ratios to bare Dramatiq / boto3 baselines.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (the smoke test)")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--out", default="bench-results.json", help="JSON results file")
    parser.add_argument("--processes", type=int, default=2, help="dramatiq worker processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process")
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="repeat bare Dramatiq + lifecycle this many times and report the median ratio "
        "(a shared machine drifts by 10-20%% between runs)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="server where renderq_bench_* databases are created and dropped",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep var/bench/run-<pid>/")
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="LOG_LEVEL of the measured processes (INFO, the default, is what production runs)",
    )
    args = parser.parse_args(argv)
    if args.processes < 1 or args.threads < 1 or args.runs < 1:
        parser.error("--processes, --threads and --runs must be >= 1")
    return args


def _quiet_in_process_logs() -> None:
    """Product code called in-process (producer, limiter) must not print into the table."""
    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    selected = resolve_sections(args.only)
    sizes = QUICK if args.quick else Sizes()
    run_dir = ROOT / "var" / "bench" / f"run-{os.getpid()}"
    bench = Bench(args=args, sizes=replace(sizes), selected=selected, run_dir=run_dir)
    _quiet_in_process_logs()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    # Also when started with SIGINT ignored (a background job of a script): Ctrl-C or
    # ``kill -INT`` must always lead to the cleanup below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    code = 0
    try:
        bench.prepare()
        plan: list[tuple[str, Callable[[], None]]] = [
            ("bare", bench.bare),
            ("lifecycle", bench.lifecycle),
        ]
        if "start_latency" in selected or "completion_latency" in selected:
            plan.append(("latency", bench.latency))
        plan += [
            ("poll_sweep", bench.poll_sweep),
            ("enqueue", bench.enqueue),
            ("throttle", bench.throttle),
            ("memory", bench.memory),
        ]
        for name, fn in plan:
            if name == "latency" or name in selected:
                if name == "lifecycle" and "bare" in bench.errors:
                    bench.errors[name] = "skipped: the bare baseline failed"
                    continue
                bench.run_section(name, fn)
        bench.evaluate_targets()
        results = bench.report(time.monotonic() - started)
        Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"results written to {args.out}")
        code = 1 if bench.errors else 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything this run started", file=sys.stderr)
        code = 130
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            bench.cleanup()
        finally:
            signal.signal(signal.SIGINT, previous)
        if code == 0 and not args.keep_logs:
            shutil.rmtree(run_dir, ignore_errors=True)
            with contextlib.suppress(OSError):  # var/bench/, only if no other run uses it
                run_dir.parent.rmdir()
        elif run_dir.exists():
            print(f"logs kept in {run_dir}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
