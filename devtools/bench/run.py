"""One measurement's processes, Redis namespace and environment: ``Run``.

Every section measures inside one or more ``Run`` blocks: entering one starts the Lambda
emulator (if asked) and points the in-process product code at a namespace and database of the
run's own; the section then starts workers and the scheduler through it, and takes CPU
snapshots around what it times. Leaving records the workers' peak RSS (the ``memory``
section's figures) and stops everything, so the next run starts from nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from devtools.bench.support import (
    BenchStack,
    busy_fraction,
    cpu_seconds,
    emulator_call,
    machine_context_switches,
    machine_cpu,
    product_env,
)
from devtools.devstack import drop_namespace, free_port, wait_for
from shared.redis_keys import RedisKeys

if TYPE_CHECKING:
    from devtools.bench.context import Bench

# --------------------------------------------------------------------------------------
#: The Procfile's worker groups, as ``Run.start_workers(procfile_groups=True)`` starts them.
START_QUEUES = ("renders", "renders-admitted")
POLL_QUEUES = ("render-polls", "render-events")
PROCFILE_GROUPS_NOTE = (
    "starts (renders, renders-admitted: -p P -t T) and polls (render-polls, and render-events "
    "for want of a notifier group: -p P -t T/2) in worker groups of their own, as the Procfile"
)

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
        #: The poll group, when the workers run as the Procfile's groups.
        self.poller: Any = None
        self.scheduler: Any = None
        self.web: Any = None
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

    def start_workers(self, *, procfile_groups: bool = False) -> None:
        """``dramatiq worker.actors -p P -t T`` serving every queue; with
        ``procfile_groups``, the Procfile's split instead (``PROCFILE_GROUPS_NOTE``). Returns
        once every process has booted, so boot time is never part of a figure."""
        import redis

        p, t = self.bench.args.processes, self.bench.args.threads
        groups: dict[str, tuple[int, list[str] | None]] = (
            {"worker": (t, list(START_QUEUES)), "poller": (max(1, t // 2), list(POLL_QUEUES))}
            if procfile_groups
            else {"worker": (t, None)}
        )
        procs = {
            name: self.stack.start_dramatiq(
                name, "worker.actors", processes=p, threads=threads, queues=queues
            )
            for name, (threads, queues) in groups.items()
        }
        self.worker = procs["worker"]
        self.poller = procs.get("poller")
        expected = p * len(procs)
        client = redis.Redis.from_url(self.bench.redis_url)

        def ready() -> bool:
            booted = 0
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}:\n" + self.stack.log_tail(name)
                    )
                log_path = self.stack.log_dir / f"{name}.log"
                booted += log_path.read_text(errors="replace").count("ready for action")
            heartbeats = int(client.hlen(RedisKeys(self.namespace).workers()))
            return heartbeats >= expected or booted >= expected

        try:
            wait_for(ready, timeout=90, interval=0.1, what=f"{expected} worker processes to boot")
        finally:
            client.close()

    def _groups(self) -> list[Any]:
        return [proc for proc in (self.worker, self.poller) if proc is not None]

    def start_scheduler(self) -> None:
        self.scheduler = self.stack.spawn("scheduler", [sys.executable, "-m", "worker.scheduler"])

    def start_web(self) -> None:
        """``python -m web`` on ``WEB_PORT`` (set in this run's settings); returns once
        ``/healthz`` answers."""
        import urllib.request

        web = self.web = self.stack.spawn("web", [sys.executable, "-m", "web"])
        url = f"http://127.0.0.1:{self.env['WEB_PORT']}/healthz"

        def healthy() -> bool:
            if web.poll() is not None:
                raise RuntimeError("web process exited:\n" + self.stack.log_tail("web"))
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        wait_for(healthy, timeout=60, interval=0.1, what="the web process")

    def record_rss(self) -> None:
        """VmHWM only grows while a process lives, so the last reading is the run's peak."""
        live = [proc for proc in self._groups() if proc.poll() is None]
        if live:
            readings = [self.stack.worker_rss(proc) for proc in live]
            self.bench.rss[self.name] = {
                "run": self.name,
                "master_mb": max((r["master_mb"] or 0.0) for r in readings),
                "workers_mb": {k: v for r in readings for k, v in r["workers_mb"].items()},
            }

    def stop_workers(self) -> None:
        """Scheduler first (no new sweeps), then the workers; the emulator stays up."""
        self.record_rss()
        if self.scheduler is not None:
            self.stack.stop(self.scheduler)
            self.scheduler = None
        for proc in self._groups():
            self.stack.stop(proc)
        self.worker = self.poller = None

    def cpu_snapshot(self) -> dict[str, Any]:
        return {
            "worker": sum(self.stack.group_cpu(proc) for proc in self._groups()),
            "emulator": cpu_seconds([self.emulator_proc.pid]) if self.emulator_proc else 0.0,
            "web": self.stack.group_cpu(self.web) if self.web is not None else 0.0,
            "machine": machine_cpu(),
            "context_switches": machine_context_switches(),
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
            "web_cpu_ms_per_unit": round(1000 * (after["web"] - before["web"]) / units, 3),
            "machine_busy_fraction": busy_fraction(before["machine"], after["machine"]),
            "machine_context_switches_per_unit": round(
                (after["context_switches"] - before["context_switches"]) / units, 1
            ),
        }

    def emulator_stats(self) -> dict[str, Any]:
        assert self.emulator_url is not None
        stats: dict[str, Any] = emulator_call(self.emulator_url, "/_emulator/stats")
        return stats
