"""Where a worker's CPU goes, by component, from a py-spy profile of a benchmark run.

    py-spy record --subprocesses --nonblocking --format raw --rate 250 -o prof.txt -- \\
        python -m devtools.bench --only lifecycle
    python -m devtools.profile_table prof.txt --renders 3000 --out profile.json

py-spy's raw format is one line per distinct stack, ``frame;frame;...;frame count``, the
first frame naming the process. Only the dramatiq worker processes are counted. Each sample is
charged to the innermost frame that belongs to a known component, so time in the standard
library (``json``, ``socket``, ``threading``) counts for whoever called it: ``json.dumps``
under structlog is logging, ``socket.recv`` under redis-py is redis-py. Prints a table (share
and ms of CPU per render when ``--renders`` is given) and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

#: (component, substrings of a frame's file path), first match wins, checked innermost first.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging (structlog, logging)", ("/structlog/", "/logging/", "shared/log.py")),
    ("botocore / boto3 / urllib3", ("/botocore/", "/boto3/", "/urllib3/", "/remotion_lambda/")),
    ("SQLAlchemy / psycopg / SQLModel", ("/sqlalchemy/", "/psycopg", "/sqlmodel/")),
    ("redis-py", ("/redis/",)),
    ("Dramatiq", ("/dramatiq/",)),
    ("pydantic", ("/pydantic", "/pydantic_core/")),
    ("prometheus-client", ("/prometheus_client/",)),
    ("renderq (shared/, worker/)", ("/shared/", "/worker/")),
)
_FRAME_FILE = re.compile(r"\(([^()]*?)(?::\d+)?\)$")
_IDLE = ("wait (threading.py", "select (selectors.py", "poll (selectors.py", "sleep")


def component(stack: list[str]) -> str:
    for frame in reversed(stack):
        match = _FRAME_FILE.search(frame)
        path = match.group(1) if match else frame
        for name, needles in COMPONENTS:
            if any(n in path for n in needles):
                return name
    return "other (interpreter, standard library)"


def parse(path: Path, process_filter: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack_text, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack_text.split(";")
        if not frames or process_filter not in frames[0]:
            continue
        if any(frames[-1].startswith(idle) for idle in _IDLE):
            continue  # py-spy --idle is off by default; belt and braces
        counts[component(frames[1:])] += int(n)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.profile_table")
    parser.add_argument("profile", type=Path, help="py-spy raw output (--format raw)")
    parser.add_argument("--rate", type=float, default=250.0, help="py-spy samples per second")
    parser.add_argument("--renders", type=int, default=0, help="renders the run completed")
    parser.add_argument(
        "--process", default="worker.actors", help="count processes whose command line has it"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    counts = parse(args.profile, args.process)
    total = sum(counts.values()) or 1
    rows = []
    print(f"{'component':<40} {'share':>7} {'CPU s':>8} {'ms/render':>10}")
    for name, n in counts.most_common():
        seconds = n / args.rate
        per = 1000 * seconds / args.renders if args.renders else None
        rows.append({"component": name, "samples": n, "share": n / total, "cpu_s": seconds})
        if per is not None:
            rows[-1]["ms_per_render"] = per
        shown = f"{per:10.2f}" if per is not None else f"{'-':>10}"
        print(f"{name:<40} {100 * n / total:6.1f}% {seconds:8.2f} {shown}")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "samples": total}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
