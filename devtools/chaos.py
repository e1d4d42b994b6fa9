"""The chaos run: ``python -m devtools.chaos``.

Pushes N renders through several independent worker groups (each a ``dramatiq`` master, as if
on its own machine) while killing worker processes at random (SIGKILL), wiping Redis once
(FLUSHALL) and making the emulated Lambda fail intermittently (429s, crashes, failing progress
calls). Remotion's own ways of failing are on as well: the emulated account has less Lambda
concurrency than renderq's budget lets start (renderers throttled inside renders, which
renderq starts again as new attempts), a share of renders names a composition the site does
not have (Remotion fails them after the start), and status sometimes cannot read a render's
progress.json for a few seconds ("No render with ID", after Remotion's retries). A supervisor
loop restarts dead groups, as systemd or compose would. Remotion's webhooks go to a web process
(and are dropped, delayed, duplicated and reordered at times, so the safety poll must catch
the lost ones), a share of renders is cancelled while pending or rendering, and every render
asks for notifications (a Dramatiq actor, and for half of them a signed HTTP callback to a
receiver in this process). Then it checks the invariants and prints the figures:

* every render is terminal (``lost`` counts the ones that are not);
* no attempt was started twice (``duplicates``: one start per outName; the unavoidable window
  is recovered by outName), and every attempt but the last of a render was throttled inside
  Lambda;
* every failure has an error code and Remotion's message, and only injected faults fail
  renders (a fatal error, an unknown composition);
* every terminal render (cancelled ones included) has exactly one delivered event per channel
  it asked for, and cancelled renders are only those that were cancelled;
* the per-user rate limit held in every window that does not straddle the Redis wipe (a wiped
  Redis forgets the windows; see docs/architecture.md). Starts of attempts Lambda throttled
  inside the render do not count: renderq gives their permit back.

Exit status 0 when every invariant holds. ``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from devtools.devstack import ROOT, Stack, free_port
from devtools.emulator import control

FAULTS = [
    {"throttle_starts": 4},
    {"crash_starts": 2},
    {"throttle_status": 8},
    {"crash_status": 4},
    {"fail_status": 3},
    {"unreadable_progress_for_ms": 3000},  # a "No render with ID" window for new renders
    {"unreadable_progress_for_ms": 0},
    {"webhook_drop": 5},
    {"webhook_duplicate": 5},
    {"webhook_reorder": 3},
    {"webhook_delay_ms": 1500},
    {"webhook_delay_ms": 0},
]
WEBHOOK_SECRET = "chaos-webhook-secret-0123456789abcdef"
SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver:
    """The producer's callback endpoint: counts deliveries by event id."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.events: Counter[str] = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.events[self.headers["webhook-id"]] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/renderq"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


TERMINAL = ("complete", "failed", "cancelled")
#: A composition the emulated site does not have: Remotion fails it in launch.
MISSING_COMPOSITION = "NotOnTheSite"


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def attempt_name(render: Any, attempt: int) -> str:
    """The outName of one attempt (``shared.repository.out_name``)."""
    from shared.repository import out_name

    return out_name(render.id, attempt, render.codec)


def parse_rate(spec: str) -> tuple[int, float]:
    count, window = spec.split("/")
    return int(count), float(window.rstrip("s"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--groups", type=int, default=3, help="independent worker groups")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--kill-every", type=float, default=4.0, help="mean seconds between kills")
    parser.add_argument("--rate", default="3/4s", help="RENDER_RATE_LIMIT for the run (n/Ns)")
    parser.add_argument("--time-limit", type=float, default=300.0)
    parser.add_argument("--fatal-share", type=float, default=0.05, help="renders made to fail")
    parser.add_argument(
        "--unknown-share", type=float, default=0.03, help="renders naming a missing composition"
    )
    parser.add_argument("--cancel-share", type=float, default=0.05, help="renders cancelled")
    parser.add_argument(
        "--account-concurrency",
        type=int,
        default=60,
        help="the emulated account's Lambda concurrency (renderq's budget stays at 900)",
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    run_dir = ROOT / "var" / f"chaos-{uuid.uuid4().hex[:6]}"
    stack = Stack(log_dir=run_dir)
    figures: dict[str, Any] = {"renders": args.renders, "groups": args.groups, "kills": 0}
    try:
        redis_url = stack.ensure_redis("", private=True)  # it will be wiped
        emulator_url = stack.start_emulator(
            "--speed", "150", "--concurrency-limit", str(args.account_concurrency)
        )
        database_url = os.environ.get("CHAOS_DATABASE_URL", f"sqlite:///{run_dir / 'chaos.db'}")
        receiver = Receiver()
        web_port = free_port()
        stack.env.update(
            {
                "REDIS_URL": redis_url,
                "REDIS_NAMESPACE": "chaos",
                "DATABASE_URL": database_url,
                "AWS_ENDPOINT_URL_LAMBDA": emulator_url,
                "AWS_ENDPOINT_URL_S3": emulator_url,
                "REMOTION_AWS_ACCESS_KEY_ID": "AKIACHAOSCHAOSCHAOS0",
                "REMOTION_AWS_SECRET_ACCESS_KEY": "chaos-secret-not-real-000000000000000000",
                "LOG_FORMAT": "json",
                "RENDER_RATE_LIMIT": args.rate,
                "POLL_INTERVAL_S": "0.5",
                "LAMBDA_CONNECT_TIMEOUT_S": "1",
                "LAMBDA_READ_TIMEOUT_S": "2",
                "CLAIM_MARGIN_S": "2",
                "BROKER_HEARTBEAT_TIMEOUT_MS": "3000",
                "BROKER_MAINTENANCE_CHANCE": "200000",
                "RECONCILE_INTERVAL_S": "2",
                "RECONCILE_GRACE_S": "3",
                "MAX_POLL_FAILURES": "1000",
                "MAX_START_ATTEMPTS": "1000",
                "MAX_THROTTLE_RESTARTS": "1000",
                "THROTTLE_RESTART_BACKOFF_MS": "1000",
                "THROTTLE_RESTART_BACKOFF_MAX_MS": "8000",
                "WEB_HOST": "127.0.0.1",
                "WEB_PORT": str(web_port),
                "REMOTION_WEBHOOK_URL": f"http://127.0.0.1:{web_port}/webhooks/remotion",
                "REMOTION_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "SAFETY_POLL_INTERVAL_S": "2",
                "CANCEL_STOP_BOUND_S": "10",
                "CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
                "NOTIFY_SIGNING_SECRET": SIGNING_SECRET,
                "NOTIFY_TIMEOUT_S": "2",
                "NOTIFY_SWEEP_INTERVAL_S": "1",
            }
        )
        os.environ.update(stack.env)
        from devtools.migrate import upgrade_head

        upgrade_head(database_url)
        from shared import renders
        from shared.errors import IllegalTransition
        from shared.models import EventStatus
        from shared.producer import RenderRequest, enqueue_renders
        from shared.render_request import NotifyActor
        from shared.repository import events as outbox

        doomed = rng.sample(
            range(args.renders), int(args.renders * (args.fatal_share + args.unknown_share))
        )
        fatal_ids: set[int] = set(doomed[: int(args.renders * args.fatal_share)])
        unknown_ids: set[int] = set(doomed) - fatal_ids
        requests = [
            RenderRequest(
                user_id=f"user{i % args.users}",
                generation_id=f"chaos-{i}",
                composition=MISSING_COMPOSITION if i in unknown_ids else "Main",
                width=1280,
                height=720,
                fps=30,
                duration_in_frames=rng.randint(60, 240),
                input_props={"__emulator__": {"fatal_at": 0.5, "message": "injected fatal error"}}
                if i in fatal_ids
                else {"i": i},
                notify=NotifyActor(queue_name="chaos-events", actor_name="render_done"),
                callback_url=receiver.url if i % 2 else None,
            )
            for i in range(args.renders)
        ]
        stored = enqueue_renders(requests)
        ids = [r.id for r in stored]
        expected_failures = {stored[i].id for i in fatal_ids | unknown_ids}
        unknown_renders = {stored[i].id for i in unknown_ids}
        to_cancel = set(rng.sample(ids, int(args.renders * args.cancel_share)))
        cancelled: set[str] = set()
        web = stack.spawn("web", [sys.executable, "-m", "web"])

        groups = [
            stack.start_worker(f"group{g}", processes=2, threads=args.threads)
            for g in range(args.groups)
        ]
        stack.start_scheduler()
        started = time.monotonic()
        next_kill = started + rng.expovariate(1 / args.kill_every)
        next_fault = started + 3.0
        flushed_at: float | None = None
        restarts = 0
        while True:
            now = time.monotonic()
            rows = renders.get_many(ids)
            terminal = sum(r.status in TERMINAL for r in rows)
            if terminal == len(ids) or now - started > args.time_limit:
                break
            for g, proc in enumerate(groups):
                if proc.poll() is not None:  # the supervisor's job: restart the group
                    groups[g] = stack.start_worker(f"group{g}", processes=2, threads=args.threads)
                    restarts += 1
            if web.poll() is not None:
                web = stack.spawn("web", [sys.executable, "-m", "web"])
                restarts += 1
            # Cancel a few renders as they go, some while pending, some while rendering.
            for row in rows:
                if row.id in to_cancel and row.id not in cancelled and rng.random() < 0.1:
                    with contextlib.suppress(IllegalTransition):
                        renders.cancel(row.id, "chaos")
                    cancelled.add(row.id)
            if now >= next_kill:
                victim = rng.choice(groups)
                kids = children(victim.pid)
                if kids:
                    with contextlib.suppress(ProcessLookupError):  # it may have just exited
                        os.kill(rng.choice(kids), signal.SIGKILL)
                        figures["kills"] += 1
                next_kill = now + rng.expovariate(1 / args.kill_every)
            if flushed_at is None and terminal >= len(ids) * 0.3:
                import redis

                redis.Redis.from_url(redis_url).flushall()
                flushed_at = time.time()
            # Faults belong to the busy period: injected until the last renders drain, a
            # lone render backing off (up to a minute per 429) could meet a fresh fault at
            # every retry and never finish, which tests the injector, not renderq.
            if now >= next_fault and terminal < len(ids) * 0.9:
                control(emulator_url, "/_emulator/faults", rng.choice(FAULTS))
                next_fault = now + rng.uniform(2.0, 5.0)
            time.sleep(0.3)
        drain_s = time.monotonic() - started
        # Deliveries run a little behind the transitions (and retry): wait for the outbox,
        # still supervising (a group killed just before the last render finished comes back).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
            e.status == EventStatus.PENDING for e in outbox.list_events(limit=100_000)
        ):
            for g, proc in enumerate(groups):
                if proc.poll() is not None:
                    groups[g] = stack.start_worker(f"group{g}", processes=2, threads=args.threads)
                    restarts += 1
            time.sleep(0.5)
        events = outbox.list_events(limit=100_000)

        rows = renders.get_many(ids)
        stats = control(emulator_url, "/_emulator/stats")
        by_out = stats["start_times_by_out_name"]
        # One start per attempt (outName); an attempt before the last one was throttled
        # inside Lambda, and its start is not counted against the user's rate limit.
        starts_by_attempt = {
            r.id: [len(by_out.get(attempt_name(r, a), [])) for a in range(1, r.attempts + 1)]
            for r in rows
        }
        throttled = {
            (r.id, e["attempt"])
            for r in rows
            for e in r.error_history
            if e.get("code") == "lambda_throttled"
        }
        failed = [r for r in rows if r.status == "failed"]
        limit, window = parse_rate(args.rate)
        rate_violations = 0
        per_user: dict[str, list[float]] = defaultdict(list)
        for r in rows:
            for attempt in range(1, r.attempts + 1):
                if (r.id, attempt) not in throttled:
                    per_user[r.user_id] += by_out.get(attempt_name(r, attempt), [])
        for times in per_user.values():
            times.sort()
            for i in range(len(times) - limit):
                first, last = times[i], times[i + limit]
                straddles = flushed_at is not None and first - window <= flushed_at <= last + window
                if last - first < window and not straddles:
                    rate_violations += 1
        unexplained_attempts = sum(
            (r.id, a) not in throttled for r in rows for a in range(1, r.attempts)
        )
        wrong_reasons = sum(
            r.id in unknown_renders and "Could not find composition" not in (r.error_message or "")
            for r in failed
        )
        wanted = {
            r.id: {"dramatiq", "http"} if r.callback_url else {"dramatiq"}
            for r in rows
            if r.status in TERMINAL
        }
        delivered: dict[str, Counter[str]] = defaultdict(Counter)
        for event in events:
            if event.status == EventStatus.DELIVERED:
                delivered[event.render_id][event.channel] += 1
        notification_errors = sum(
            delivered.get(rid, Counter()) != Counter(dict.fromkeys(channels, 1))
            for rid, channels in wanted.items()
        )
        http_ids = {e.event_id for e in events if e.channel == "http"}
        never_started = [
            f"{r.id} {r.status} attempts={r.attempts} starts={starts_by_attempt[r.id]}"
            for r in rows
            if r.id not in expected_failures
            and r.status != "cancelled"
            and starts_by_attempt[r.id][-1] == 0
        ]
        figures.update(
            {
                "restarts": restarts,
                "redis_flushes": 1 if flushed_at else 0,
                "lost": sum(r.status not in TERMINAL for r in rows),
                "cancelled": sum(r.status == "cancelled" for r in rows),
                "cancelled_unasked": sum(
                    r.status == "cancelled" and r.id not in cancelled for r in rows
                ),
                "events_delivered": sum(e.status == EventStatus.DELIVERED for e in events),
                "events_dead": sum(e.status == EventStatus.DEAD for e in events),
                "renders_without_exactly_one_event_per_channel": notification_errors,
                "callbacks_received": sum(receiver.events.values()),
                "callbacks_missing": len(http_ids - set(receiver.events)),
                "complete": sum(r.status == "complete" for r in rows),
                "failed": len(failed),
                "failed_by_code": dict(Counter(r.error_code for r in failed)),
                "unexpected_failures": sum(r.id not in expected_failures for r in failed),
                "unknown_composition_failures": len(unknown_renders),
                "failures_with_wrong_reason": wrong_reasons,
                "throttled_attempts_restarted": len(throttled),
                "attempts_without_a_throttle": unexplained_attempts,
                "failures_without_reason": sum(
                    not (r.error_code and r.error_message) for r in failed
                ),
                "never_started": len(never_started),
                "never_started_examples": never_started[:3],
                "duplicates": sum(n > 1 for ns in starts_by_attempt.values() for n in ns),
                "emulator_renderers_throttled": stats["concurrency"]["refused"].get("renderer", 0),
                "emulator_starts": stats["starts_total"],
                "emulator_429s": stats["throttled_total"],
                "emulator_crashes": stats["crashes_total"],
                "rate_limit_violations": rate_violations,
                "drain_s": round(drain_s, 1),
                "logs": str(run_dir.relative_to(ROOT)),
            }
        )
    finally:
        stack.close()

    for key, value in figures.items():
        print(f"{key:>24}: {value}")
    ok = (
        figures.get("lost") == 0
        and figures.get("duplicates") == 0
        and figures.get("never_started") == 0
        and figures.get("failures_without_reason") == 0
        and figures.get("unexpected_failures") == 0
        and figures.get("failures_with_wrong_reason") == 0
        and figures.get("attempts_without_a_throttle") == 0
        and figures.get("rate_limit_violations") == 0
        and figures.get("cancelled_unasked") == 0
        and figures.get("renders_without_exactly_one_event_per_channel") == 0
        and figures.get("callbacks_missing") == 0
    )
    print("chaos: invariants hold" if ok else "chaos: INVARIANT VIOLATED")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({**figures, "ok": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
