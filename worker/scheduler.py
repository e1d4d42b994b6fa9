"""The scheduler: ``python -m worker.scheduler``. Sends the periodic ticks: one ``poll_tick``
per ``POLL_TICK_S`` (while a sweep can have work), one ``reconcile`` per
``RECONCILE_INTERVAL_S`` and one ``deliver_due`` (the event outbox's sweep) per
``NOTIFY_SWEEP_INTERVAL_S``.

Dramatiq has no scheduler of its own. This one is deliberately dumb: it sends a tick stamped
with its slot number (``floor(now / tick length)``) and the tick actor claims the slot in
Redis, so operators can run two schedulers for availability and each slot is still swept once.
The scheduler holds no state; killing it loses nothing but ticks.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType

from shared.log import configure_logging, get_logger
from shared.messages import DELIVER_DUE, POLL_TICK, RECONCILE, make_broker, new_message
from shared.redis_client import get_redis
from shared.redis_keys import keys
from shared.settings import Settings, get_settings

log = get_logger(__name__)


@dataclass
class PeriodicJob:
    actor_name: str
    queue_name: str
    interval: float
    last_slot: int | None = None


class Scheduler:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.broker = make_broker(self.settings)
        self.stopping = threading.Event()
        self.ticks_sent = 0
        self._redis = get_redis()
        self._next_due_key = keys().poll_next_due()
        s = self.settings
        self.jobs = [
            PeriodicJob(POLL_TICK, s.poll_queue, s.sweep_every_s),
            PeriodicJob(RECONCILE, s.poll_queue, s.reconcile_interval_s),
            PeriodicJob(DELIVER_DUE, s.notify_queue, s.notify_sweep_interval_s),
        ]

    def _poll_tick_due(self, job: PeriodicJob, slot: int) -> bool:
        """A poll tick only when its sweep can have work: the last empty sweep recorded when
        the next render comes due (``worker.poller``); no record (a sweep found work, or Redis
        lost it) means every ``POLL_TICK_S``. A tick costs a message through Redis and a
        query, so an idle deployment, or one whose renders wait parked behind a full budget,
        sends a few a minute instead of five a second."""
        if job.actor_name != POLL_TICK:
            return True
        due = self._redis.get(self._next_due_key)
        return due is None or float(due) <= (slot + 1) * job.interval

    def send_tick(self, job: PeriodicJob, slot: int) -> None:
        message = new_message(job.queue_name, job.actor_name, [slot])
        self.broker.enqueue(message)
        self.ticks_sent += 1

    def run(self, *, max_ticks: int | None = None) -> None:
        log.info(
            "scheduler started",
            jobs={job.actor_name: (job.queue_name, job.interval) for job in self.jobs},
        )
        while not self.stopping.is_set():
            now = time.time()
            for job in self.jobs:
                slot = int(now // job.interval)
                if slot == job.last_slot:
                    continue
                try:
                    if not self._poll_tick_due(job, slot):
                        job.last_slot = slot
                        continue
                    self.send_tick(job, slot)
                    job.last_slot = slot
                except Exception:
                    # Redis down: keep trying; ticks are cheap to lose.
                    log.exception("could not send tick", actor=job.actor_name, slot=slot)
            if max_ticks is not None and self.ticks_sent >= max_ticks:
                break
            now = time.time()
            next_due = min((int(now // j.interval) + 1) * j.interval for j in self.jobs)
            self.stopping.wait(max(0.01, next_due - now))
        log.info("scheduler stopped", ticks_sent=self.ticks_sent)

    def stop(self, *_: object) -> None:
        self.stopping.set()


def main() -> None:
    configure_logging()
    scheduler = Scheduler()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        scheduler.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    scheduler.run()


if __name__ == "__main__":
    main()
