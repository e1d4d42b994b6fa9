"""Section ``capacity``: fair admission to the Lambda budget, its idle cost, pools, big renders.

The budget (``shared.lambda_budget``) decides who starts when Lambda room is short; what a
user notices is whether a flood from someone else delays them, and what an operator pays is
the cost of renders waiting. Four measurements, each with real workers and the emulator:

* **noisy**: user A floods, B..E arrive a second later with 5 renders each, then V (priority
  class 5) with one: A's head start over each small user (``fairness.starts_before``), Jain's
  index of budget-seconds while all five were backlogged, and how long V waited. The flood is
  not drained: once B..E and V are done the run is stopped and its namespace dropped.
* **idle**: thousands of renders parked behind a full budget (renders that never finish)
  should cost almost nothing: worker CPU and Redis commands/s over a window, next to the same
  stack with nothing waiting. Measured on a private redis-server, because the shared one's
  ``INFO commandstats`` counts every other client too; a MONITOR sample after the window
  says which periodic work the commands are.
* **pools**: two emulators (two accounts), pool ``b``'s account below its budget, so renders
  throttle inside Lambda there: the pool must shrink (AIMD), recover once the limit is lifted,
  and lose or duplicate nothing.
* **oversized**: a 20 s 1080p render on a budget of 10 is cut coarser and completes; with
  ``MAX_FRAMES_PER_LAMBDA`` too small the producer refuses it (``OverCapacity``).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import Counter
from typing import Any

from devtools import fairness
from devtools.bench.common import chunks
from devtools.bench.config import UNLIMITED
from devtools.bench.context import Bench
from devtools.bench.run import Run
from devtools.bench.support import BenchStack, cpu_seconds, emulator_call, product_env
from devtools.devstack import wait_for

NEVER_FINISH = {"__emulator__": {"never_finish": True}}
SPEED_300 = ("--speed", "300")


def _req(user: str, i: int, tag: str, **overrides: Any) -> Any:
    """A 720p render of 60 frames at 30 fps: 1 + 60/20 = 4 functions."""
    from shared.render_request import RenderRequest

    base = dict(composition="Bench", width=1280, height=720, fps=30, duration_in_frames=60)
    fields = {"input_props": {"i": i}, **base, **overrides}
    return RenderRequest(user_id=user, generation_id=f"cap-{tag}-{user}-{i}", **fields)


def _all_rows() -> list[Any]:
    from sqlmodel import Session, select

    from shared.db import get_engine
    from shared.models import Render

    with Session(get_engine()) as session:
        return list(session.exec(select(Render)))


def _admitted_at() -> dict[str, float]:
    """When the budget admitted each render woken from the line (its timeline's first
    ``admitted`` step, epoch seconds)."""
    import sqlalchemy as sa

    from shared import timeline
    from shared.db import get_engine

    t = timeline.table
    stmt = (
        sa.select(t.c.render_id, sa.func.min(t.c.at))
        .where(t.c.kind == "admitted")
        .group_by(t.c.render_id)
    )
    with get_engine().connect() as conn:
        return {rid: at.timestamp() for rid, at in conn.execute(stmt)}


def _by_admission(grants: list[Any], admitted: dict[str, float], rows: list[Any]) -> list[Any]:
    """The grants with the time the budget admitted them in place of their Lambda start (a
    render that never waited was admitted when it started): the budget's decisions, without
    each start's own lag behind its admission."""
    from dataclasses import replace

    key = {(r.user_id, r.started_at.timestamp()): r.id for r in rows if r.started_at}
    out = [
        replace(g, started_s=admitted.get(key.get((g.user, g.started_s), ""), g.started_s))
        for g in grants
    ]
    return sorted(out, key=lambda g: g.started_s)


def _done(ids: list[str]) -> bool:
    from shared import renders

    return all(r.status.terminal for r in renders.get_many(ids))


def _start(
    bench: Bench,
    stack: contextlib.ExitStack,
    name: str,
    settings: dict[str, str],
    emulator_args: tuple[str, ...] | None = SPEED_300,
) -> Run:
    """A fresh database, a Run in it, its workers and the scheduler."""
    db_url = stack.enter_context(bench.database(bench.main_kind()))
    run = stack.enter_context(
        Run(bench, name, db_url, settings=settings, emulator_args=emulator_args)
    )
    run.start_workers()
    run.start_scheduler()
    return run


def _noisy(bench: Bench) -> dict[str, Any]:
    from shared.producer import enqueue_render, enqueue_renders
    from shared.user_limits import set_user_plan

    n, small_users = bench.sizes.capacity_flood, ["B", "C", "D", "E"]
    settings = {**UNLIMITED, "LAMBDA_CONCURRENCY_BUDGET": "40", "POLL_INTERVAL_S": "0.5"}
    with contextlib.ExitStack() as stack:
        run = _start(bench, stack, "capacity-noisy", settings)
        from shared.lambda_budget import get_budget

        flood_at = time.monotonic()
        for part in chunks([_req("A", i, "flood") for i in range(n)], 500):
            enqueue_renders(part)
        time.sleep(1.0)
        small = [_req(u, i, "small") for u in small_users for i in range(5)]
        ids = [r.id for r in enqueue_renders(small)]
        # V comes behind the flood once it waits in line (parked), as the issue describes:
        # "a higher class render enqueued behind 2,000 waiting ones".
        wait_for(
            lambda: get_budget().waiting() >= n - 2 * 10,
            timeout=120,
            interval=0.05,
            what="the flood parked",
        )
        parked_after_s = time.monotonic() - flood_at
        set_user_plan("V", priority=5)
        vip = enqueue_render(_req("V", 0, "vip"))
        wait_for(lambda: _done([*ids, vip.id]), timeout=180, interval=0.2, what="B..E and V")
        rows = _all_rows()
        admitted_at = _admitted_at()
        stats = run.emulator_stats()
    by_id = {r.id: r for r in rows}
    statuses = Counter(by_id[i].status.value for i in [*ids, vip.id])
    grants = fairness.grants(rows, 40)
    admitted = _by_admission(grants, admitted_at, rows)
    head_start = {u: fairness.starts_before(grants, u, "A") for u in small_users}
    head_start_admitted = {u: fairness.starts_before(admitted, u, "A") for u in small_users}
    # Room is held from admission to release: budget-seconds and the window in which all
    # five compete are measured from admission (the Lambda start comes 0.1-2 s later, after
    # the wake-up message, a quiet queue's poll and the claim). By start time beside it.
    competing = ["A", *small_users]
    window = fairness.backlogged_window(admitted, competing)
    shares = fairness.budget_seconds(admitted, *window, clip=True)
    jain = fairness.jain_index(shares.get(u, 0.0) for u in competing)
    whole = fairness.budget_seconds(admitted, *window)  # whole holds, past the window too
    jain_whole_holds = fairness.jain_index(whole.get(u, 0.0) for u in competing)
    start_window = fairness.backlogged_window(grants, competing)
    start_shares = fairness.budget_seconds(grants, *start_window, clip=True)
    jain_by_start = fairness.jain_index(start_shares.get(u, 0.0) for u in competing)
    # The same window by functions granted: budget-seconds add each render's hold time, which
    # ends at the poll that sees it done (0-0.5 s after it is done here): noise that a window
    # of a few renders per user does not average out.
    granted = Counter(g.user for g in admitted if window[0] <= g.started_s <= window[1])
    jain_grants = fairness.jain_index(granted.get(u, 0) for u in ["A", *small_users])
    v = by_id[vip.id]
    v_created, v_started = (
        v.created_at.timestamp(),
        v.started_at.timestamp() if v.started_at else None,
    )
    others = [r.started_at.timestamp() for r in rows if r.user_id != "V" and r.started_at]
    between = [t for t in others if v_started is not None and v_created < t < v_started]
    same_batch = sum(t < v_created + 0.1 for t in between)  # dispatched with V, or before it
    lower = len(between) - same_batch
    v_admitted = next((g.started_s for g in admitted if g.user == "V"), None)
    lower_admitted = sum(
        1
        for g in admitted
        if g.user != "V" and v_admitted is not None and v_created < g.started_s < v_admitted
    )
    return {
        "a_admitted_before_first_admission": head_start_admitted,
        "a_admitted_before_max": max(head_start_admitted.values()),
        "priority_lower_class_admitted_before_v": lower_admitted,
        "flood_renders": n,
        "flood_parked_after_s": round(parked_after_s, 2),
        "flood_started_when_stopped": sum(1 for r in rows if r.user_id == "A" and r.started_at),
        "small_statuses": dict(statuses),
        "a_starts_before_first_start": head_start,
        "a_starts_before_max": max(head_start.values()),
        "backlogged_window_s": round(window[1] - window[0], 3),
        "budget_seconds": {u: round(s, 2) for u, s in sorted(shares.items())},
        "jain_index": round(jain, 4),
        "jain_index_by_start": round(jain_by_start, 4),
        "jain_index_whole_holds": round(jain_whole_holds, 4),
        "jain_index_by_renders": round(jain_grants, 4),
        "renders_admitted_in_window": dict(sorted(granted.items())),
        "priority_lower_class_starts_before_v": lower,
        "priority_same_batch_excluded": same_batch,
        "priority_v_wait_ms": None if v_started is None else round(1000 * (v_started - v_created)),
        "peak_concurrent_functions": stats.get("peak_concurrent_functions"),
        "throttled_total": stats.get("throttled_total"),
    }


def _commandstats(client: Any) -> dict[str, int]:
    raw = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in raw.items()}


def _shape(token: str, namespace: str) -> str:
    """A key with the namespace, ids and numbers folded, so the same periodic work groups."""
    token = token.replace(namespace, "<ns>")
    token = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", token)
    return re.sub(r"\d+(\.\d+)?", "<n>", token)


def _monitor(url: str, namespace: str, seconds: float) -> dict[str, int]:
    """Commands by (name, first key, Lua op) over ``seconds`` of ``MONITOR``; taken after the
    measured window, since MONITOR itself costs the server."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2)
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    with contextlib.suppress(redis.TimeoutError), client.monitor() as monitor:
        while time.monotonic() < deadline:
            parts = monitor.next_command()["command"].split()
            name = parts[0].upper() if parts else "?"
            if name in ("EVALSHA", "EVAL") and len(parts) > 3:
                keys = int(parts[2]) if parts[2].isdigit() else 0
                op = parts[3 + keys] if len(parts) > 3 + keys else ""
                label = f"{name} {_shape(parts[3], namespace)}"
                if re.fullmatch(r"[a-z_]{2,20}", op):
                    label += f" op={op}"
            else:
                label = f"{name} {_shape(parts[1], namespace)}" if len(parts) > 1 else name
            seen[label] += 1
    client.close()
    return dict(seen.most_common(15))


def _idle_once(bench: Bench, label: str, waiting: int) -> dict[str, Any]:
    import redis

    from shared.lambda_budget import get_budget
    from shared.producer import enqueue_renders

    seconds = bench.sizes.capacity_idle_seconds
    with contextlib.ExitStack() as stack:
        redis_stack = BenchStack(log_dir=bench.run_dir / f"capacity-{label}-redis")
        stack.callback(redis_stack.close)
        url = redis_stack.ensure_redis("redis://127.0.0.1:6379/0", private=True)
        redis_pid = redis_stack.processes[0][1].pid
        settings = {**UNLIMITED, "LAMBDA_CONCURRENCY_BUDGET": "12", "REDIS_URL": url}
        run = _start(bench, stack, f"capacity-{label}", settings)
        if waiting:
            requests = [
                _req(f"u{i % 20}", i, label, input_props=NEVER_FINISH) for i in range(waiting)
            ]
            for part in chunks(requests, 500):
                enqueue_renders(part)
            wait_for(
                lambda: get_budget().waiting() >= waiting - 3,
                timeout=120 + waiting / 20,
                interval=0.5,
                what=f"{waiting - 3} renders parked",
            )
        time.sleep(2.0)  # the last acks and the first poll sweeps of the 3 in flight
        parked = get_budget().waiting()
        client = redis.Redis.from_url(url)
        c0, t0, cpu0 = _commandstats(client), time.monotonic(), run.cpu_snapshot()
        s0, r0 = cpu_seconds([run.scheduler.pid]), cpu_seconds([redis_pid])
        time.sleep(seconds)
        c1, t1, cpu1 = _commandstats(client), time.monotonic(), run.cpu_snapshot()
        s1, r1 = cpu_seconds([run.scheduler.pid]), cpu_seconds([redis_pid])
        client.close()
        sample = _monitor(url, run.namespace, min(seconds, 3.0))
    elapsed = t1 - t0
    deltas = {cmd: c1.get(cmd, 0) - c0.get(cmd, 0) for cmd in c1}
    deltas["info"] = deltas.get("info", 0) - 1  # our own first INFO
    total = sum(v for v in deltas.values() if v > 0)
    top = sorted(((c, v) for c, v in deltas.items() if v > 0), key=lambda cv: -cv[1])[:10]
    return {
        "waiting": parked,
        "window_s": round(elapsed, 2),
        "worker_cpu_pct_of_core": round(100 * (cpu1["worker"] - cpu0["worker"]) / elapsed, 2),
        "scheduler_cpu_pct_of_core": round(100 * (s1 - s0) / elapsed, 2),
        "redis_server_cpu_pct_of_core": round(100 * (r1 - r0) / elapsed, 2),
        "redis_commands_per_s": round(total / elapsed, 1),
        "top_commands_per_s": {c: round(v / elapsed, 1) for c, v in top},
        "monitor_sample": sample,
    }


def _print_idle(label: str, fig: dict[str, Any]) -> None:
    print(
        f"\ncapacity idle ({label}): {fig['waiting']:,} waiting, worker CPU "
        f"{fig['worker_cpu_pct_of_core']:.2f}% of a core, Redis {fig['redis_commands_per_s']:,.1f} "
        f"commands/s over {fig['window_s']:g} s; top commands/s:"
    )
    for cmd, rate in fig["top_commands_per_s"].items():
        print(f"  {cmd:<24} {rate:>9.1f}")
    print("  MONITOR sample (command, first key, Lua op), counts:")
    for cmd, count in fig["monitor_sample"].items():
        print(f"  {count:>6}  {cmd}")


class _PoolWatch(threading.Thread):
    """Samples ``get_budget().pools()`` so the shrink and the recovery are seen as they happen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.min_b = self.last_b = 40
        self.shrinks = 0
        self.full_since: float | None = None

    def run(self) -> None:
        from shared.lambda_budget import get_budget

        while not self.stop.wait(0.05):
            with contextlib.suppress(Exception):
                b = next(p for p in get_budget().pools() if p.name == "b").effective
                self.shrinks += b < self.last_b
                self.min_b, self.last_b = min(self.min_b, b), b
                if b < 40:
                    self.full_since = None
                elif self.full_since is None:
                    self.full_since = time.monotonic()


def _pools(bench: Bench) -> dict[str, Any]:
    from shared.producer import enqueue_renders

    n = bench.sizes.capacity_pool_renders
    with contextlib.ExitStack() as stack:
        emulators = []
        for name, extra in (("a", ()), ("b", ("--concurrency-limit", "24"))):
            emus = BenchStack(log_dir=bench.run_dir / f"capacity-pools-emulator-{name}")
            stack.callback(emus.close)
            emulators.append(emus.start_emulator("--speed", "200", *extra))
        url_a, url_b = emulators
        pools = [
            {"name": "a", "budget": 20, "endpoint_url": url_a},
            {"name": "b", "budget": 40, "endpoint_url": url_b},
        ]
        settings = {
            **UNLIMITED,
            "LAMBDA_POOLS": json.dumps(pools),
            "AWS_ENDPOINT_URL_LAMBDA": url_a,
            "AWS_ENDPOINT_URL_S3": url_a,
            "POLL_INTERVAL_S": "0.5",
            "LAMBDA_BUDGET_RECOVERY_PER_S": "4",
            "LAMBDA_BUDGET_SHRINK_COOLDOWN_S": "2",
        }
        _start(bench, stack, "capacity-pools", settings, emulator_args=None)
        watch = _PoolWatch()
        watch.start()
        stack.callback(watch.stop.set)
        ids = [r.id for r in enqueue_renders([_req(f"u{i % 10}", i, "pool") for i in range(n)])]
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: watch.shrinks or _done(ids), timeout=60, interval=0.1, what="shrink")
        time.sleep(2.0)  # a little of the sawtooth under the limit
        emulator_call(url_b, "/_emulator/faults", {"concurrency_limit": None})
        lifted = time.monotonic()
        recovered_s = None
        with contextlib.suppress(TimeoutError):
            wait_for(
                lambda: watch.full_since is not None and watch.full_since >= lifted,
                timeout=60,
                interval=0.05,
                what="pool b back at 40",
            )
            assert watch.full_since is not None
            recovered_s = round(watch.full_since - lifted, 2)
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: _done(ids), timeout=120 + n, interval=0.5, what="pool renders")
        watch.stop.set()
        watch.join(5)
        rows = _all_rows()
        stats = {
            name: emulator_call(u, "/_emulator/stats")
            for name, u in zip("ab", emulators, strict=True)
        }
    starts: Counter[str] = Counter()
    for s in stats.values():
        starts.update(s["starts_by_out_name"])
    complete = [r for r in rows if r.status.value == "complete"]
    return {
        "renders": n,
        "complete_by_pool": dict(Counter(r.lambda_pool for r in complete)),
        "statuses": dict(Counter(r.status.value for r in rows)),
        "lost": n - len(complete),
        "duplicate_starts": sum(c - 1 for c in starts.values() if c > 1),
        "restarted_attempts": sum(r.attempts - 1 for r in rows),
        "b_min_effective_budget": watch.min_b,
        "b_shrinks_seen": watch.shrinks,
        "b_recovered_to_40_s_after_lift": recovered_s,
        "starts_total": {k: s["starts_total"] for k, s in stats.items()},
        "throttled_total": {k: s["throttled_total"] for k, s in stats.items()},
        "peak_concurrent_functions": {k: s["peak_concurrent_functions"] for k, s in stats.items()},
    }


def _oversized(bench: Bench) -> dict[str, Any]:
    from shared import renders
    from shared.producer import OverCapacity, enqueue_render
    from shared.render_plan import chunking_for

    big = {"width": 1920, "height": 1080, "fps": 30, "duration_in_frames": 600}
    settings = {**UNLIMITED, "LAMBDA_CONCURRENCY_BUDGET": "10", "POLL_INTERVAL_S": "0.5"}
    with contextlib.ExitStack() as stack:
        run = _start(bench, stack, "capacity-big", settings)
        chunking = chunking_for(600)
        render = enqueue_render(_req("big", 0, "big", **big))
        wait_for(lambda: _done([render.id]), timeout=120, interval=0.2, what="the 20 s render")
        final = renders.get(render.id)
        stats = run.emulator_stats()
        refused: str | None = None
        with product_env({"MAX_FRAMES_PER_LAMBDA": "50"}):
            try:
                enqueue_render(_req("big", 1, "unfit", **big))
            except OverCapacity as exc:
                refused = str(exc)
    planned = [r["functions"] for r in stats.get("renders", {}).values()]
    return {
        "status": final.status.value if final else None,
        "functions": chunking.functions,
        "frames_per_lambda": chunking.frames_per_lambda,
        "emulator_functions": planned,
        "peak_concurrent_functions": stats.get("peak_concurrent_functions"),
        "over_capacity_message": refused,
    }


def capacity(bench: Bench) -> None:
    kind = bench.main_kind()
    figures: dict[str, Any] = {}
    noisy = figures["noisy"] = _noisy(bench)
    ok = noisy["a_starts_before_max"] <= 10 and noisy["jain_index"] >= 0.95
    bench.row(
        "capacity noisy: A starts before B..E / Jain",
        f"{noisy['a_starts_before_max']} / {noisy['jain_index']:.3f}",
        f"flood of {noisy['flood_renders']:,}, budget 40 (10 renders); Jain of budget-seconds "
        f"in the window from admission (from start: {noisy['jain_index_by_start']:.3f}; whole "
        f"holds past the window: {noisy['jain_index_whole_holds']:.3f}), by renders admitted "
        f"{noisy['jain_index_by_renders']:.3f} {noisy['renders_admitted_in_window']}; "
        "per user "
        f"{noisy['a_starts_before_first_start']} (by admission: "
        f"{noisy['a_admitted_before_first_admission']}); targets <= 10 and >= 0.95: "
        + ("met" if ok else "NOT met"),
    )
    bench.row(
        "capacity priority: lower-class starts / V wait",
        f"{noisy['priority_lower_class_starts_before_v']} / {noisy['priority_v_wait_ms']} ms",
        f"V in class 5, enqueued once the flood was parked ({noisy['flood_parked_after_s']} s "
        f"after it); {noisy['priority_same_batch_excluded']} started within 0.1 s of V's "
        "creation excluded (same dispatch); lower-class renders admitted before V: "
        f"{noisy['priority_lower_class_admitted_before_v']}",
    )
    idle = figures["idle"] = {
        "waiting": _idle_once(bench, "idle", bench.sizes.capacity_idle),
        "baseline": _idle_once(bench, "idle-baseline", 0),
    }
    for label, fig in idle.items():
        _print_idle(label, fig)
        bench.row(
            f"capacity idle ({label}): worker CPU / Redis",
            f"{fig['worker_cpu_pct_of_core']:.2f}% / {fig['redis_commands_per_s']:,.0f} cmd/s",
            f"{fig['waiting']:,} waiting, {fig['window_s']:g} s, private Redis; top: "
            + ", ".join(f"{c} {r:g}" for c, r in list(fig["top_commands_per_s"].items())[:4])
            + ("" if label != "waiting" else "; targets < 5% and < 200 cmd/s"),
        )
    pools = figures["pools"] = _pools(bench)
    bench.row(
        "capacity pools: b min budget / recovery",
        f"{pools['b_min_effective_budget']} / {pools['b_recovered_to_40_s_after_lift']} s",
        f"{pools['renders']} renders, complete by pool {pools['complete_by_pool']}, "
        f"lost {pools['lost']}, duplicate starts {pools['duplicate_starts']}, "
        f"restarts {pools['restarted_attempts']}",
    )
    big = figures["oversized"] = _oversized(bench)
    bench.row(
        "capacity oversized: 600 frames 1080p, budget 10",
        f"{big['status']}, {big['functions']} functions x {big['frames_per_lambda']} frames",
        "MAX_FRAMES_PER_LAMBDA=50: " + (big["over_capacity_message"] or "NOT refused")[:70],
    )
    bench.sections["capacity"] = {
        "runs": 1,
        "settings": {
            **bench.worker_settings(),
            "database": kind,
            "noisy": "budget 40, 60-frame 720p renders (4 functions), POLL_INTERVAL_S 0.5, "
            "emulator speed 300; B..E 1 s after A, V (priority 5) once the flood is parked",
            "idle": f"budget 12 (3 never-finishing renders), {bench.sizes.capacity_idle:,} "
            f"enqueued, window {bench.sizes.capacity_idle_seconds:g} s, default POLL_INTERVAL_S"
            " and POLL_TICK_S, private redis-server",
            "pools": "a budget 20, b budget 40 (its emulator limit 24, lifted after the "
            "first shrink + 2 s), recovery 4/s, cooldown 2 s, speed 200",
            "oversized": "budget 10, 1920x1080, 600 frames at 30 fps, speed 300",
        },
        "figures": figures,
    }
