"""Output: the printed tables and the JSON document written to ``--out``.

The JSON holds the machine, the options and sizes, every section's settings and figures, the
printed table, the targets and the errors; its structure (``schema``) is what readers of the
results files, and the smoke test, rely on.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devtools.bench.context import Bench


def report(bench: Bench, elapsed_s: float) -> dict[str, Any]:
    m = bench.machine
    header = (
        f"renderq benchmark - {m.get('cores')} cores ({m.get('cpu_model')}), "
        f"{m.get('memory_total')}, Redis {m.get('redis_server')}, "
        f"PostgreSQL {m.get('postgres_server') or 'n/a'}, Python {m.get('python')}; "
        f"workers -p {bench.args.processes} -t {bench.args.threads}; each figure: 1 run"
        + (f" (lifecycle: median of {bench.args.runs} paired runs)" if bench.args.runs > 1 else "")
        + ("; --quick sizes" if bench.args.quick else "")
    )
    print()
    print(header)
    print(f"load average at start {m.get('loadavg_at_start')}, end {list(os.getloadavg())}")
    print_table(("figure", "value", "settings / notes"), bench.rows)
    print()
    print_table(
        ("target", "measured", "status"),
        [(t["target"], t["shown"], t["status"]) for t in bench.targets],
    )
    print(f"\ntotal wall time {elapsed_s:.0f} s")
    bench.machine["loadavg_at_end"] = list(os.getloadavg())
    return {
        "schema": 1,
        "pid": os.getpid(),
        "command": " ".join([Path(sys.executable).name, "-m", "devtools.bench", *sys.argv[1:]]),
        "started_at": datetime.fromtimestamp(time.time() - elapsed_s, UTC).isoformat(),
        "duration_s": round(elapsed_s, 1),
        "machine": bench.machine,
        "options": {
            "quick": bench.args.quick,
            "only": bench.selected,
            "processes": bench.args.processes,
            "threads": bench.args.threads,
            "sizes": bench.sizes.__dict__,
        },
        "sections": bench.sections,
        "table": [{"figure": f, "value": v, "detail": d} for f, v, d in bench.rows],
        "targets": bench.targets,
        "errors": bench.errors,
        "postgres_skipped": bench.pg_error,
    }


def print_table(header: tuple[str, str, str], rows: Sequence[tuple[str, str, str]]) -> None:
    widths = [max([len(header[i]), *(len(r[i]) for r in rows)]) for i in range(3)]
    widths[2] = min(widths[2], 100)
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def write_results(results: dict[str, Any], out: str) -> None:
    """The JSON results file (``--out``); values JSON lacks (e.g. datetimes) as strings."""
    Path(out).write_text(json.dumps(results, indent=2, default=str) + "\n")
