"""The context every section shares: ``Bench``, one invocation of the benchmark.

It holds the shared services (Redis, the PostgreSQL server, the spawned helpers), the results
(``sections`` for the JSON, ``rows`` for the printed table, ``targets``), the few figures one
section hands to another (the bare rate for the lifecycle ratios, the poll interval for the
completion target, every run's worker RSS for ``memory``), and everything to clean up.

The sections themselves are functions in modules of their own (``devtools.bench.bare``,
``devtools.bench.lifecycle``, ...), each taking this object.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devtools.bench.config import Sizes
from devtools.bench.helpers import Helpers
from devtools.bench.support import (
    BenchStack,
    Postgres,
    kill_leftovers,
    machine_info,
    new_sqlite,
    remove_sqlite,
)
from devtools.devstack import drop_namespace

if TYPE_CHECKING:
    from devtools.bench.run import Run


# --------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------


@dataclass
class Bench:
    """One invocation: shared services (Redis, the PostgreSQL server), the results, and
    everything to clean up. Sections add figures to ``sections`` (JSON) and ``rows``
    (printed table); ``devtools.bench.targets.evaluate_targets`` compares them with the
    performance issue's targets."""

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

    def run_section(self, name: str, fn: Callable[[Bench], None]) -> None:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            fn(self)
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
