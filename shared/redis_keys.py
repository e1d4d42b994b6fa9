"""Every Redis key renderq writes or reads, and nowhere else.

All keys live under ``REDIS_NAMESPACE`` so several deployments (or test runs) can share one
Redis. Two families:

* **Dramatiq's** keys, written by Dramatiq's Redis broker; renderq only reads them (status,
  the reconciler, the broker's crash recovery). Their formats are Dramatiq's
  (``dramatiq/brokers/redis.py`` and ``redis/dispatch.lua``): if Dramatiq changes them,
  this module is the one place to follow.
* **renderq's** own keys: the rate-limit windows, the Lambda budget, poll sweeps, slot
  claims, worker heartbeats, failpoints.

``PATTERNS`` lists every key shape with its owner; ``tests/test_redis_keys.py`` checks that a
full run writes no key outside it and that no other module builds a key string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from dramatiq.common import dq_name, xq_name

from shared.settings import get_settings


@dataclass(frozen=True)
class RedisKeys:
    namespace: str

    def _key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    # --- Dramatiq's (read by renderq) ------------------------------------------------------

    def queue(self, queue: str) -> str:
        """List of ready message ids."""
        return self._key(queue)

    def queue_messages(self, queue: str) -> str:
        """Hash message id -> encoded message, for ready and fetched-but-unacked messages."""
        return self._key(f"{queue}.msgs")

    def delayed(self, queue: str) -> str:
        return self.queue(dq_name(queue))

    def delayed_messages(self, queue: str) -> str:
        return self.queue_messages(dq_name(queue))

    def dead_letters(self, queue: str) -> str:
        """Zset of dead-lettered message ids (Dramatiq keeps them 7 days)."""
        return self.queue(xq_name(queue))

    def dead_letter_messages(self, queue: str) -> str:
        return self.queue_messages(xq_name(queue))

    def acks(self, broker_id: str, queue: str) -> str:
        """Set of messages one broker (worker process) holds unacked on a queue."""
        return self._key(f"__acks__.{broker_id}.{queue}")

    def broker_heartbeats(self) -> str:
        return self._key("__heartbeats__")

    # --- renderq's --------------------------------------------------------------------------

    def rate_limit_prefix(self) -> str:
        """Prefix of the per-user permit zsets: ``<prefix>:<user id>``."""
        return self._key("ratelimit")

    def api_rate_limit_prefix(self) -> str:
        """Prefix of the per-API-key request windows: ``<prefix>:<key id>`` (web/api/auth.py)."""
        return self._key("api-ratelimit")

    def budget(self, part: str) -> str:
        """The Lambda budget's structures (see shared/lambda_budget.py)."""
        if part not in BUDGET_PARTS:
            raise ValueError(f"unknown budget key {part!r}")
        return self._key("budget", part)

    def budget_queue_prefix(self) -> str:
        """Prefix of the per-user zsets of parked renders: ``<prefix>:<user id>``."""
        return self._key("budget", "queue")

    def budget_users_prefix(self) -> str:
        """Prefix of the per-priority zsets of users with parked renders: ``<prefix>:<0..9>``."""
        return self._key("budget", "users")

    def pauses(self) -> str:
        """Hash of active pauses: ``all`` or ``user:<id>`` -> JSON (by, at, reason)."""
        return self._key("pause", "scopes")

    def paused_renders(self) -> str:
        """Zset of renders held while paused (score: when first sent, ms), ``shared.pauses``."""
        return self._key("pause", "held")

    def paused_render_users(self) -> str:
        """Hash render id -> user id of the held renders."""
        return self._key("pause", "held-user")

    def poll_slot(self, slot: int) -> str:
        return self._key("poll-slot", str(slot))

    def reconcile_slot(self, slot: int) -> str:
        return self._key("reconcile-slot", str(slot))

    def deliver_slot(self, slot: int) -> str:
        return self._key("deliver-slot", str(slot))

    def poll_running(self) -> str:
        return self._key("poll", "running")

    def poll_due(self) -> str:
        return self._key("poll", "due")

    def poll_sweep(self, slot: int) -> str:
        return self._key("poll", "sweep", str(slot))

    def poll_sweeps(self) -> str:
        """SCAN pattern of every sweep's hash (``poll_sweep``)."""
        return self._key("poll", "sweep", "*")

    def poll_next_due(self) -> str:
        return self._key("poll", "next-due")

    def last_sweep(self) -> str:
        return self._key("poll", "last-sweep")

    def workers(self) -> str:
        return self._key("workers")

    def doorbell(self, queue: str) -> str:
        """List of wake-up tokens of a queue (``shared.doorbell``); ``queue`` may be a
        delayed queue's name."""
        return self._key("doorbell", queue)

    def console_login_failures(self, name: str, minute: int) -> str:
        """Failed console logins for one operator name in one minute (expires with it)."""
        return self._key("console", "login-failures", str(minute), name)

    def failpoint(self, name: str) -> str:
        return self._key("failpoint", name)

    def everything(self) -> str:
        """SCAN pattern of every key of the namespace (clean-up of a test or demo run)."""
        return self._key("*")


#: The Lambda budget's keys, in the order its Lua scripts take them.
BUDGET_PARTS = (
    "inflight",
    "held_by",
    "used",
    "parked",
    "user_inflight",
    "finish",
    "vtime",
    "aimd",
)


@lru_cache(maxsize=8)
def _for_namespace(namespace: str) -> RedisKeys:
    return RedisKeys(namespace)


def keys() -> RedisKeys:
    """The keys of the configured namespace."""
    return _for_namespace(get_settings().redis_namespace)


#: Every key shape under the namespace: (regex for the part after ``<ns>:``, owner, meaning).
#: ``{queue}`` stands for one of the deployment's queue names.
PATTERNS: tuple[tuple[str, str, str], ...] = (
    (r"{queue}", "dramatiq", "queue: ready message ids"),
    (r"{queue}\.msgs", "dramatiq", "queue: messages by id"),
    (r"{queue}\.DQ", "dramatiq", "delayed queue: ready ids"),
    (r"{queue}\.DQ\.msgs", "dramatiq", "delayed queue: messages by id"),
    (r"{queue}\.XQ", "dramatiq", "dead letters by time"),
    (r"{queue}\.XQ\.msgs", "dramatiq", "dead letters: messages by id"),
    (r"__acks__\.[^.]+\.{queue}(?:\.DQ)?", "dramatiq", "messages a worker holds unacked"),
    (r"__heartbeats__", "dramatiq", "broker heartbeats"),
    (r"ratelimit:.+", "renderq", "a user's permits (sliding-window log)"),
    (r"api-ratelimit:[A-Za-z0-9]+", "renderq", "an API key's requests (sliding-window log)"),
    (r"budget:(?:" + "|".join(BUDGET_PARTS) + ")", "renderq", "Lambda concurrency budget"),
    (r"budget:queue:.+", "renderq", "a user's renders parked for budget, oldest first"),
    (r"budget:users:\d", "renderq", "users with parked renders of one priority, by SFQ tag"),
    (r"pause:scopes", "renderq", "active pauses of starts (a user, or everything)"),
    (r"pause:held", "renderq", "renders held while their user (or everything) is paused"),
    (r"pause:held-user", "renderq", "the user of each held render"),
    (r"poll-slot:\d+", "renderq", "a poll tick claimed this slot"),
    (r"reconcile-slot:\d+", "renderq", "a reconcile pass claimed this slot"),
    (r"deliver-slot:\d+", "renderq", "an event delivery sweep claimed this slot"),
    (r"poll:running", "renderq", "slot of the sweep in progress"),
    (r"poll:due", "renderq", "a tick was skipped during the running sweep"),
    (r"poll:sweep:\d+", "renderq", "one sweep's counters"),
    (r"poll:last-sweep", "renderq", "the last finished sweep"),
    (r"poll:next-due", "renderq", "when the next sweep can have renders to poll"),
    (r"workers", "renderq", "worker heartbeats"),
    (r"doorbell:{queue}(?:\.DQ)?", "renderq", "wake-up tokens for a queue's idle consumers"),
    (r"console:login-failures:\d+:.+", "renderq", "failed console logins of a name, a minute"),
    (r"failpoint:[a-z_.]+", "tests", "which process fired a failpoint"),
)


def is_known(key: str, namespace: str, queues: tuple[str, ...]) -> bool:
    """Whether ``key`` (a full key) has one of the shapes in ``PATTERNS``."""
    prefix = namespace + ":"
    if not key.startswith(prefix):
        return False
    rest = key[len(prefix) :]
    queue = "(?:" + "|".join(re.escape(q) for q in queues) + ")"
    return any(re.fullmatch(p.replace("{queue}", queue), rest) for p, _, _ in PATTERNS)
