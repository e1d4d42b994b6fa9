"""``python -m devtools.bench``: the command line; parses the options, runs the sections.

The options and the JSON written to ``--out`` are those of the benchmark as a whole (see the
package's docstring, ``devtools/bench/__init__.py``); each section is a function of its own
module, run in the order of ``SECTIONS`` by ``Bench.run_section``, which records a failing
section's error and goes on with the next. Ctrl-C and SIGTERM lead to the same cleanup as a
normal end: every process, Redis namespace and database the run started is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import FrameType

from devtools.bench import (
    api,
    bare,
    capacity,
    enqueue,
    latency,
    lifecycle,
    lifecycle_webhooks,
    memory,
    recovery,
    sweep,
    throttle,
    webhooks,
)
from devtools.bench.config import DEFAULT_POSTGRES_URL, QUICK, REQUIRES, SECTIONS, Sizes
from devtools.bench.context import Bench
from devtools.bench.report import report, write_results
from devtools.bench.targets import evaluate_targets
from devtools.devstack import ROOT

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
        plan: list[tuple[str, Callable[[Bench], None]]] = [
            ("bare", bare.bare),
            ("lifecycle", lifecycle.lifecycle),
            ("lifecycle_webhooks", lifecycle_webhooks.lifecycle_webhooks),
        ]
        if "start_latency" in selected or "completion_latency" in selected:
            plan.append(("latency", latency.latency))
        plan += [
            ("poll_sweep", sweep.poll_sweep),
            ("enqueue", enqueue.enqueue),
            ("throttle", throttle.throttle),
            ("recovery", recovery.recovery),
            ("webhooks", webhooks.webhooks),
            ("memory", memory.memory),
            ("capacity", capacity.capacity),
            ("api", api.api),
        ]
        for name, fn in plan:
            if name == "latency" or name in selected:
                if name.startswith("lifecycle") and "bare" in bench.errors:
                    bench.errors[name] = "skipped: the bare baseline failed"
                    continue
                bench.run_section(name, fn)
        evaluate_targets(bench)
        results = report(bench, time.monotonic() - started)
        write_results(results, args.out)
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
