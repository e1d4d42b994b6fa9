"""Plumbing for ``python -m devtools.bench``: processes, environments, databases, measurements.

Kept apart from the sections (``devtools.bench.bare``, ``devtools.bench.lifecycle``, ...) so
that each reads as a list of measurements. The pieces here exist because a benchmark on a
shared 2-core machine must (1) run the real processes (``dramatiq`` workers, the scheduler,
the emulator) exactly as production would, (2) switch the in-process product settings between
sections without leaking one section's environment into the next, and (3) leave nothing
behind: no processes, no Redis keys, no databases.

It also holds the statistics (percentiles) and the machine facts every figure is reported
with. Functions that run in ``spawn``-ed helper processes are in ``devtools.bench.helpers``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import platform
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.devstack import Stack, dramatiq_argv
from devtools.emulator import control

#: Queue and actor of the bare-Dramatiq baseline (``devtools.bench.noop``).
NOOP_QUEUE = "bench-noop"
NOOP_ACTOR = "bench_noop"

# --------------------------------------------------------------------------------------
# Statistics and machine facts
# --------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no samples.

    Interpolation rather than nearest rank, so p99 of a few hundred samples does not jump
    between two neighbours from one run to the next.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize_ms(values_s: Sequence[float]) -> dict[str, float | int]:
    """p50/p95/p99/max in milliseconds from samples in seconds (the unit targets use)."""
    ms = [v * 1000 for v in values_s]
    return {
        "samples": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3) if ms else math.nan,
    }


def _read_first(path: str, prefix: str) -> str | None:
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def machine_info(redis_url: str, postgres_version: str | None) -> dict[str, Any]:
    """What a reader needs to judge a figure: every absolute number depends on these."""
    from importlib.metadata import version

    versions: dict[str, str] = {}
    for package in ("dramatiq", "redis", "boto3", "sqlalchemy", "psycopg", "remotion-lambda"):
        with contextlib.suppress(Exception):
            versions[package] = version(package)
    redis_version = None
    with contextlib.suppress(Exception):
        import redis

        client = redis.Redis.from_url(redis_url)
        redis_version = str(client.info("server").get("redis_version"))
        client.close()
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu_model": _read_first("/proc/cpuinfo", "model name") or platform.processor(),
        "memory_total": _read_first("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis_server": redis_version,
        "postgres_server": postgres_version,
        "packages": versions,
        "loadavg_at_start": list(os.getloadavg()),
    }


# --------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------


def _parent_map() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                data = handle.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ")".
        fields = data.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1].isdigit():
            parents[int(entry)] = int(fields[1])
    return parents


def descendants(pid: int) -> list[int]:
    parents = _parent_map()
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parents.items() if parent == current]
        found += children
        frontier += children
    return found


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU of live processes (all their threads), in seconds."""
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[-1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            continue
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, to report how contended a run was."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = float(sum(values[:8]))
    return total - idle, total


def machine_context_switches() -> int:
    """Context switches of the whole machine so far (``ctxt`` in /proc/stat): per render, they
    say how much a run's processes handed the two cores back and forth."""
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith("ctxt "):
                return int(line.split()[1])
    return 0


def busy_fraction(before: tuple[float, float], after: tuple[float, float]) -> float:
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 3) if total > 0 else math.nan


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident set size of a live process (``VmHWM``), in MB (10^6 bytes)."""
    value = _read_first(f"/proc/{pid}/status", "VmHWM")
    if value is None:
        return None
    return round(int(value.split()[0]) * 1024 / 1e6, 1)


#: Every process any BenchStack started, for a last sweep when the benchmark exits.
SPAWNED: list[subprocess.Popen[bytes]] = []


def kill_leftovers() -> int:
    """SIGKILL the process group of anything still alive that a BenchStack started: the
    last line of defence (e.g. an interrupt in the middle of a stop), so that nothing the
    benchmark started outlives it."""
    killed = 0
    for proc in SPAWNED:
        if proc.poll() is None or _group_alive(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
                killed += 1
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
    SPAWNED.clear()
    return killed


@dataclass
class BenchStack(Stack):
    """``devtools.devstack.Stack`` plus what a benchmark needs: any dramatiq module, stopping
    one process early, worker RSS, and a stop that waits for whole process groups."""

    def spawn(
        self, name: str, argv: list[str], *, capture_stdout: bool = False
    ) -> subprocess.Popen[bytes]:
        proc = super().spawn(name, argv, capture_stdout=capture_stdout)
        SPAWNED.append(proc)
        return proc

    def start_dramatiq(
        self,
        name: str,
        module: str,
        *,
        processes: int,
        threads: int,
        queues: list[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """The same ``dramatiq`` command line for the bare baseline and for renderq, so the
        two differ only in the module they load."""
        # Shutdown waits for in-flight messages; a benchmark need not wait 10 minutes.
        argv = dramatiq_argv(
            module,
            processes=processes,
            threads=threads,
            queues=queues,
            shutdown_timeout_ms=5000,
        )
        return self.spawn(name, argv)

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
        """Stop one process now (e.g. workers before a bare-boto3 run on the same emulator);
        ``close()`` still stops the rest."""
        _terminate(proc, timeout)
        self.processes = [(n, p) for n, p in self.processes if p is not proc]

    def close(self, timeout: float = 15.0) -> None:
        """Like ``Stack.close``, but SIGTERM goes to each leader only, then the whole group
        is waited for.

        Signalling the whole group (as ``Stack.close`` does) hands each ``dramatiq`` worker
        process two SIGTERMs, its own and the one its master forwards; the second makes it
        kill itself, and the master may return while a sibling is still shutting down and
        writing to Redis, after the namespace was deleted.
        """
        for _name, proc in reversed(self.processes):
            _terminate(proc, timeout)
        self.processes.clear()

    def worker_rss(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        """Peak RSS of the forked worker processes (and of the master, reported apart)."""
        workers = {str(pid): vm_hwm_mb(pid) for pid in descendants(proc.pid)}
        return {
            "master_mb": vm_hwm_mb(proc.pid),
            "workers_mb": {k: v for k, v in workers.items() if v is not None},
        }

    def group_cpu(self, proc: subprocess.Popen[bytes]) -> float:
        """CPU seconds used so far by a process and its descendants (the dramatiq master and
        its forked workers), to express cost per render independently of contention."""
        return cpu_seconds([proc.pid, *descendants(proc.pid)])

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM to the process, wait for it and every process of its group (they run in a
    session of their own), SIGKILL the group after ``timeout``."""
    deadline = time.monotonic() + timeout
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.1, deadline - time.monotonic()))
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def emulator_call(url: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
    return control(url, path, body)


# --------------------------------------------------------------------------------------
# In-process settings
# --------------------------------------------------------------------------------------


def reset_product_caches() -> None:
    """Forget every per-process cache that captured settings."""
    from devtools.process import reset_caches

    reset_caches()


@contextlib.contextmanager
def product_env(values: Mapping[str, str]) -> Iterator[None]:
    """Point the in-process product code (producer, repository, limiter) at one section's
    Redis namespace and database, and put the environment back afterwards."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    reset_product_caches()
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        reset_product_caches()


# --------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------


@dataclass
class Postgres:
    """Creates and drops databases of our own on the PostgreSQL server; never touches others."""

    server_url: str
    created: list[str] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def _admin(self) -> Any:
        import sqlalchemy as sa

        from shared.db import normalize_url

        return sa.create_engine(normalize_url(self.server_url), isolation_level="AUTOCOMMIT")

    def probe(self) -> str:
        """The server version; raises when the server is unreachable."""
        engine = self._admin()
        try:
            with engine.connect() as conn:
                return str(conn.exec_driver_sql("SHOW server_version").scalar())
        finally:
            engine.dispose()

    def create(self) -> str:
        """A fresh, migrated database: every run starts without another run's dead tuples."""
        from devtools.migrate import upgrade_head

        name = f"renderq_bench_{os.getpid()}_{next(self._counter)}"
        engine = self._admin()
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        self.created.append(name)
        url = f"{self.server_url.rsplit('/', 1)[0]}/{name}"
        upgrade_head(url)
        return url

    def drop(self, url: str) -> None:
        from shared.db import dispose_engines

        dispose_engines()
        name = url.rsplit("/", 1)[1]
        engine = self._admin()
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            engine.dispose()
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            with contextlib.suppress(Exception):
                self.drop(f"{self.server_url.rsplit('/', 1)[0]}/{name}")


def new_sqlite(directory: Path) -> str:
    from devtools.migrate import upgrade_head

    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / f'bench-{uuid.uuid4().hex[:8]}.db'}"
    upgrade_head(url)
    return url


def remove_sqlite(url: str) -> None:
    from shared.db import dispose_engines

    dispose_engines()
    path = url.removeprefix("sqlite:///")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
