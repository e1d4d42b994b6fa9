"""The scheduler: ``python -m worker.scheduler``. Sends one ``poll_tick`` per poll interval.

Dramatiq has no scheduler of its own. This one is deliberately dumb: it sends a tick stamped
with its slot number (``floor(now / POLL_INTERVAL)``) and the tick actor claims the slot in
Redis, so operators can run two schedulers for availability and each slot is still swept once.
The scheduler holds no state; killing it loses nothing but ticks.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

from shared.log import configure_logging, get_logger
from shared.messages import POLL_TICK, make_broker, new_message
from shared.settings import Settings, get_settings

log = get_logger(__name__)


class Scheduler:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.broker = make_broker(self.settings)
        self.stopping = threading.Event()
        self.ticks_sent = 0

    def send_tick(self, slot: int) -> None:
        message = new_message(self.settings.poll_queue, POLL_TICK, [slot])
        self.broker.enqueue(message)
        self.ticks_sent += 1

    def run(self, *, max_ticks: int | None = None) -> None:
        interval = self.settings.poll_interval
        log.info("scheduler started", poll_interval=interval, queue=self.settings.poll_queue)
        last_slot: int | None = None
        while not self.stopping.is_set():
            now = time.time()
            slot = int(now // interval)
            if slot != last_slot:
                try:
                    self.send_tick(slot)
                    last_slot = slot
                except Exception:
                    # Redis down: keep trying every interval; ticks are cheap to lose.
                    log.exception("could not send poll tick", slot=slot)
                if max_ticks is not None and self.ticks_sent >= max_ticks:
                    break
            next_boundary = (slot + 1) * interval
            self.stopping.wait(max(0.01, next_boundary - time.time()))
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
