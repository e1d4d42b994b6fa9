"""The scheduler: ``python -m worker.scheduler``. Sends the periodic ticks: one ``poll_tick``
per ``POLL_TICK_S``, one ``reconcile`` per ``RECONCILE_INTERVAL_S`` and one ``deliver_due``
(the event outbox's sweep) per ``NOTIFY_SWEEP_INTERVAL_S``.

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
        s = self.settings
        self.jobs = [
            PeriodicJob(POLL_TICK, s.poll_queue, s.sweep_every_s),
            PeriodicJob(RECONCILE, s.poll_queue, s.reconcile_interval_s),
            PeriodicJob(DELIVER_DUE, s.notify_queue, s.notify_sweep_interval_s),
        ]

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
