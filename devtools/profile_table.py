"""Where a worker's CPU goes, by component and by renderq step, from py-spy over a bench run.

    python -m devtools.profile_table record --out var/profile -- --only lifecycle
    python -m devtools.profile_table table var/profile --renders 4000 --json profile.json

``record`` runs ``python -m devtools.bench`` with the given arguments and attaches
``py-spy record --gil --format raw`` to every dramatiq worker process as it appears (the
processes the bench starts, each a file of its own; ``py-spy --subprocesses`` does not follow
the worker group the bench spawns). ``--gil`` samples only the thread holding the GIL: CPU
spent in Python, which is what these processes are short of.

``table`` reads those files: one line per distinct stack, ``frame;frame;...;frame count``.
Samples taken while the process imported its modules are left out (the bench measures CPU
from the first render on, not the start-up). Each sample is charged to the innermost frame
that belongs to a known component, so time in the standard library (``json``, ``socket``,
``threading``) counts for whoever called it: ``json.dumps`` under structlog is logging,
``socket.recv`` under redis-py is redis-py. A second table charges each sample to the renderq
step it ran under (the claim, the Lambda start, ...). Prints both, as shares and, with
``--renders``, as ms of CPU per render.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

#: (component, substrings of a frame's file path), first match wins, checked innermost first.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging (structlog, logging)", ("structlog/", "logging/", "shared/log.py")),
    (
        "botocore / boto3 / urllib3 / http.client",
        ("botocore/", "boto3/", "urllib3/", "remotion_lambda/", "http/client.py"),
    ),
    ("SQLAlchemy / psycopg / SQLModel", ("sqlalchemy/", "psycopg", "sqlmodel/")),
    ("redis-py", ("redis/",)),
    ("Dramatiq", ("dramatiq/",)),
    ("pydantic", ("pydantic",)),
    ("prometheus-client", ("prometheus_client/",)),
    ("renderq (shared/, worker/)", ("shared/", "worker/")),
)
#: (step, a frame that marks it): a sample is charged to the first step found in its stack.
STEPS: tuple[tuple[str, str], ...] = (
    ("start: rate-limit permit (middleware)", "UserRateLimit.before_process_message"),
    ("start: budget admission (+ pause check)", "admit (shared/admission.py"),
    ("start: claim (UPDATE .. RETURNING)", "claim (worker/start.py"),
    ("start: Lambda start call", "_start_on_lambda (worker/start.py"),
    ("start: pending -> rendering + timeline", "mark_rendering (shared/repository/starts.py"),
    ("start: log line, metrics", "_record_started (worker/start.py"),
    ("start: the rest (validation, permit)", "start_render (worker/start.py"),
    ("poll: progress calls", "_read (worker/poller.py"),
    ("poll: completions (UPDATE, events, release)", "_apply (worker/poller.py"),
    ("poll: targets and the rest", "poll_batch (worker/poller.py"),
    ("poll: sweep planning", "poll_tick (worker/actors.py"),
    ("Dramatiq: ack, middleware, fetch", "dramatiq/"),
)
_STARTUP = ("_find_and_load", "import_object (dramatiq/cli.py")
_LINE = re.compile(r":\d+\)$")


def component(stack: list[str]) -> str:
    for frame in reversed(stack):
        for name, needles in COMPONENTS:
            if any(n in frame for n in needles):
                return name
    return "other (interpreter, standard library)"


def step(stack: list[str]) -> str:
    for name, marker in STEPS:
        if any(marker in frame for frame in stack):
            return name
    return "other threads (heartbeats, consumers, metrics)"


def parse(paths: list[Path]) -> tuple[Counter[str], Counter[str]]:
    by_component: Counter[str] = Counter()
    by_step: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            stack_text, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue
            frames = [_LINE.sub(")", f) for f in stack_text.split(";")]
            if frames and frames[0].startswith("process "):
                frames = frames[1:]
            if any(marker in f for f in frames for marker in _STARTUP):
                continue
            by_component[component(frames)] += int(n)
            by_step[step(frames)] += int(n)
    return by_component, by_step


def record(out: Path, bench_args: list[str], rate: int) -> int:
    """Run the bench; attach py-spy to each ``worker.actors`` process it starts."""
    out.mkdir(parents=True, exist_ok=True)
    bench = subprocess.Popen(
        [sys.executable, "-m", "devtools.bench", *bench_args],
        stdout=(out / "bench.txt").open("w"),
        stderr=subprocess.STDOUT,
    )
    beside = Path(sys.executable).with_name("py-spy")  # the venv's (requirements.lock)
    py_spy = str(beside) if beside.exists() else "py-spy"
    spies: dict[int, subprocess.Popen[bytes]] = {}
    while bench.poll() is None:
        found = subprocess.run(["pgrep", "-f", "worker.actors"], capture_output=True, text=True)
        for pid in map(int, found.stdout.split()):
            if pid not in spies:
                spies[pid] = subprocess.Popen(
                    [
                        *(py_spy, "record", "--pid", str(pid), "--gil", "--nonblocking"),
                        *("--format", "raw", "--rate", str(rate), "-o", str(out / f"{pid}.txt")),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
        time.sleep(0.2)
    for spy in spies.values():
        spy.wait(timeout=60)
    print(f"bench exited {bench.returncode}; {len(spies)} processes profiled into {out}/")
    return bench.returncode


def table(paths: list[Path], renders: int, rate: float, out: Path | None) -> None:
    by_component, by_step = parse(paths)
    total = sum(by_component.values()) or 1
    figures: dict[str, list[dict[str, object]]] = {}
    for title, counts in (("component", by_component), ("step", by_step)):
        rows: list[dict[str, object]] = []
        print(f"{title:<48} {'share':>7} {'ms/render':>10}")
        for name, n in counts.most_common():
            per = 1000 * n / rate / renders if renders else None
            rows.append({title: name, "samples": n, "share": round(n / total, 4)})
            if per is not None:
                rows[-1]["ms_per_render"] = round(per, 3)
            shown = f"{per:10.2f}" if per is not None else f"{'-':>10}"
            print(f"{name:<48} {100 * n / total:6.1f}% {shown}")
        print()
        figures[title] = rows
    if renders:
        print(f"total: {1000 * total / rate / renders:.2f} ms of GIL-held CPU per render")
    if out:
        out.write_text(json.dumps({"samples": total, "rate": rate, **figures}, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.profile_table")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run the bench with py-spy on every worker process")
    rec.add_argument("--out", type=Path, default=Path("var/profile"))
    rec.add_argument("--rate", type=int, default=250, help="samples per second")
    rec.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- then the bench's args")
    tab = sub.add_parser("table", help="CPU by component and by step from recorded profiles")
    tab.add_argument("profiles", type=Path, nargs="+", help="files, or a record --out folder")
    tab.add_argument("--rate", type=float, default=250.0, help="py-spy samples per second")
    tab.add_argument("--renders", type=int, default=0, help="renders the run completed")
    tab.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "record":
        return record(args.out, [a for a in args.bench_args if a != "--"], args.rate)
    paths = [
        path
        for given in args.profiles
        for path in (sorted(given.glob("[0-9]*.txt")) if given.is_dir() else [given])
    ]
    table(paths, args.renders, args.rate, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
