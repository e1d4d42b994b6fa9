"""Prometheus metrics from every worker process: Dramatiq's own plus renderq's.

Each ``dramatiq`` master serves ``/metrics`` on ``METRICS_HOST:METRICS_PORT`` from a forked
process that aggregates every worker process's samples (prometheus_client multiprocess mode).
Samples live in ``METRICS_DIR/<master pid>/``: one directory per master, so masters sharing a
machine never mix their files, and a restarted master never reads a dead one's stale samples.
With ``METRICS_PORT=0`` metrics are off and every function here is a no-op.

renderq's metrics (all prefixed ``renderq_``):

* ``transitions_total{from_status,to_status}``: state changes made by this worker;
* ``render_failures_total{error_code}``;
* ``deferred_total{reason}``: starts delayed (user rate limit, budget, Lambda 429, claim...);
* ``lambda_call_seconds{op}`` and ``lambda_errors_total{op,kind}``;
* ``poll_sweep_seconds`` (planned -> last batch done) and ``renders_polled_total``;
* ``cost_usd_total``: Lambda cost of renders that finished;
* ``renders{status}``, ``lambda_budget_in_use{pool}``, ``lambda_budget_effective{pool}`` and
  ``lambda_budget_waiting``: gauges refreshed at most once per poll interval.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dramatiq.middleware.prometheus as dramatiq_prometheus
from dramatiq import Broker, Worker
from dramatiq.middleware.prometheus import Prometheus

from shared.settings import get_settings
from worker.lambda_client import set_call_observer

if TYPE_CHECKING:
    from shared.lambda_budget import PoolUse

_metrics: dict[str, Any] = {}


def metrics_dir(master_pid: int | None = None) -> Path:
    base = get_settings().metrics_dir or str(Path(tempfile.gettempdir()) / "renderq-metrics")
    return Path(base) / str(master_pid if master_pid is not None else os.getppid())


def enabled() -> bool:
    return bool(_metrics)


class RenderqPrometheus(Prometheus):
    """Dramatiq's Prometheus middleware with renderq's metrics, directory and port."""

    @property
    def forks(self) -> list[Any]:
        return [serve_metrics]

    def after_process_boot(self, broker: Broker) -> None:
        directory = metrics_dir()
        directory.mkdir(parents=True, exist_ok=True)
        # prometheus_client's multiprocess mode is configured through this variable only, and
        # Dramatiq's middleware through its module global; both must point at our directory.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        dramatiq_prometheus.DB_PATH = str(directory)
        super().after_process_boot(broker)
        _create_metrics()
        set_call_observer(lambda_call)

    def after_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), str(metrics_dir()))


def _create_metrics() -> None:
    import prometheus_client as prom

    registry = prom.CollectorRegistry()  # samples go to files; the fork process aggregates
    _metrics.update(
        transitions=prom.Counter(
            "renderq_transitions_total",
            "Render state changes.",
            ["from_status", "to_status"],
            registry=registry,
        ),
        failures=prom.Counter(
            "renderq_render_failures_total",
            "Renders failed, by error code.",
            ["error_code"],
            registry=registry,
        ),
        deferred=prom.Counter(
            "renderq_deferred_total",
            "Start messages delayed, by reason.",
            ["reason"],
            registry=registry,
        ),
        lambda_seconds=prom.Histogram(
            "renderq_lambda_call_seconds",
            "Lambda call latency.",
            ["op"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        ),
        lambda_errors=prom.Counter(
            "renderq_lambda_errors_total",
            "Lambda call failures.",
            ["op", "kind"],
            registry=registry,
        ),
        sweep_seconds=prom.Histogram(
            "renderq_poll_sweep_seconds",
            "Time from planning a poll sweep to its last batch.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
            registry=registry,
        ),
        polled=prom.Counter(
            "renderq_renders_polled_total", "Progress calls made for renders.", registry=registry
        ),
        cost=prom.Counter(
            "renderq_cost_usd_total", "Lambda cost of finished renders (USD).", registry=registry
        ),
        renders=prom.Gauge(
            "renderq_renders",
            "Renders pending or rendering (refreshed every poll tick).",
            ["status"],
            multiprocess_mode="mostrecent",
            registry=registry,
        ),
        budget=prom.Gauge(
            "renderq_lambda_budget_in_use",
            "Estimated Lambda functions held by renders in flight, per pool.",
            ["pool"],
            multiprocess_mode="mostrecent",
            registry=registry,
        ),
        effective=prom.Gauge(
            "renderq_lambda_budget_effective",
            "A pool's effective budget: its configured one, or less while throttled (AIMD).",
            ["pool"],
            multiprocess_mode="mostrecent",
            registry=registry,
        ),
        waiting=prom.Gauge(
            "renderq_lambda_budget_waiting",
            "Renders parked until Lambda budget frees.",
            multiprocess_mode="mostrecent",
            registry=registry,
        ),
    )


# --- recording (no-ops when metrics are off) ----------------------------------------------


def transition(from_status: str, to_status: str, error_code: str | None = None) -> None:
    if _metrics:
        _metrics["transitions"].labels(from_status, to_status).inc()
        if error_code:
            _metrics["failures"].labels(error_code).inc()


def deferred(reason: str) -> None:
    if _metrics:
        _metrics["deferred"].labels(reason).inc()


def lambda_call(op: str, seconds: float, error_kind: str | None) -> None:
    if _metrics:
        _metrics["lambda_seconds"].labels(op).observe(seconds)
        if error_kind:
            _metrics["lambda_errors"].labels(op, error_kind).inc()


def sweep(seconds: float, polled: int) -> None:
    if _metrics:
        _metrics["sweep_seconds"].observe(seconds)
        _metrics["polled"].inc(polled)


def cost(usd: float | None) -> None:
    if _metrics and usd:
        _metrics["cost"].inc(usd)


def gauges(counts: dict[str, int], pools: list[PoolUse], waiting: int) -> None:
    if _metrics:
        for status, count in counts.items():
            _metrics["renders"].labels(status).set(count)
        for pool in pools:
            _metrics["budget"].labels(pool.name).set(pool.in_use)
            _metrics["effective"].labels(pool.name).set(pool.effective)
        _metrics["waiting"].set(waiting)


# --- exposition (runs in a process forked by the dramatiq master) ---------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        import prometheus_client as prom
        from prometheus_client import multiprocess

        if self.path.split("?")[0] not in ("/metrics", "/"):
            self.send_error(404)
            return
        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(metrics_dir()))
        body = prom.generate_latest(registry)
        self.send_response(200)
        self.send_header("Content-Type", prom.CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _remove_dead_siblings() -> None:
    """Sample directories of masters that no longer run are never read again; delete them."""
    for sibling in metrics_dir().parent.iterdir():
        if not sibling.name.isdigit() or sibling == metrics_dir():
            continue
        try:
            os.kill(int(sibling.name), 0)
        except ProcessLookupError:
            shutil.rmtree(sibling, ignore_errors=True)
        except PermissionError:
            continue


def serve_metrics() -> None:
    settings = get_settings()
    metrics_dir().mkdir(parents=True, exist_ok=True)
    _remove_dead_siblings()
    server = ThreadingHTTPServer((settings.metrics_host, settings.metrics_port), _Handler)
    server.daemon_threads = True
    server.serve_forever()
