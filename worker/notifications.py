"""Delivering terminal events to the services that asked (the outbox's sender).

Events are written with the terminal transition (``shared/events.py``); this module sends
them. Two ways in: ``deliver_events`` right after the transition committed (the fast path),
and ``deliver_due`` every ``NOTIFY_SWEEP_INTERVAL_S`` for retries and for events whose fast
path was lost (a crash, Redis down). Each delivery is claimed first
(``repository.events.claim_delivery``), so the two never send an event at the same time.

Channels:

* ``dramatiq``: a message to the render's ``notify`` actor (``args[0]`` is the event, its
  ``message_id`` the delivery's id), through the deployment's Redis;
* ``http``: a POST of the event to ``callback_url``, signed per the Standard Webhooks spec with
  ``NOTIFY_SIGNING_SECRET`` (the ``standardwebhooks`` package: ``webhook-id`` is the stable
  ``event_id``, plus ``webhook-timestamp`` and ``webhook-signature``). The URL is checked again
  before every attempt and the connection is pinned to the address that was checked
  (``shared/callbacks.py``). A 2xx answer delivers it.

A failed attempt is retried with exponential backoff (``NOTIFY_BACKOFF_BASE_S`` doubling up to
``NOTIFY_BACKOFF_MAX_S``) and dead-lettered after ``NOTIFY_MAX_ATTEMPTS``; ``python -m
scripts.events`` lists and replays dead ones.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from dramatiq import Message
from standardwebhooks.webhooks import Webhook

from shared import callbacks
from shared.errors import RenderqError
from shared.log import get_logger
from shared.messages import producer_broker
from shared.models import utcnow
from shared.per_process import PerProcess
from shared.repository import events as outbox
from shared.settings import Settings, get_settings
from worker.failpoints import failpoint

if TYPE_CHECKING:
    import httpx

log = get_logger(__name__)


def _new_client() -> httpx.Client:
    # Imported on first delivery: start and poll workers never send one, and httpx (with
    # click, which it imports) is ~3 MB of every worker's RSS.
    import httpx

    return httpx.Client(follow_redirects=False)


#: One HTTP client per process (connection reuse). Redirects are not followed: a redirect
#: could lead anywhere, and only the URL itself was checked.
_http: PerProcess[httpx.Client] = PerProcess(_new_client, close=lambda client: client.close())


class DeliveryFailed(RenderqError):
    """This attempt did not deliver the event (the message says why)."""


def backoff_s(attempt: int, settings: Settings) -> float:
    """Seconds before attempt ``attempt + 1``: doubling, capped, with +-20% jitter."""
    step = min(settings.notify_backoff_max_s, settings.notify_backoff_base_s * 2 ** (attempt - 1))
    return step * random.uniform(0.8, 1.2)


def _lease_s(settings: Settings) -> float:
    return 2 * settings.notify_timeout_s + 10


def deliver(event_row_ids: Sequence[str]) -> Counter[str]:
    """Try each delivery that is due; returns counts by result."""
    counts: Counter[str] = Counter()
    for event_row_id in event_row_ids:
        counts[deliver_one(event_row_id)] += 1
    return counts


def deliver_one(event_row_id: str) -> str:
    settings = get_settings()
    event = outbox.claim_delivery(event_row_id, _lease_s(settings))
    if event is None:
        return "not_due"  # delivered, dead, not due yet, or another worker holds it
    bound = {"event_id": event["event_id"], "render_id": event["render_id"]}
    try:
        send(event, settings)
    except Exception as exc:
        return _failed(event, exc, settings, bound)
    failpoint("notify.after_send")
    outbox.mark_delivered(event_row_id, event["attempts"])
    log.info(
        "event delivered",
        channel=event["channel"],
        type=event["type"],
        attempts=event["attempts"],
        **bound,
    )
    return "delivered"


def _failed(
    event: dict[str, Any], exc: BaseException, settings: Settings, bound: dict[str, str]
) -> str:
    error = f"{type(exc).__name__}: {exc}"
    attempts = int(event["attempts"])
    if attempts >= settings.notify_max_attempts or isinstance(exc, callbacks.CallbackRefused):
        outbox.mark_dead(event["id"], attempts, error)
        log.error("event dead-lettered", channel=event["channel"], error=error, **bound)
        return "dead"
    at: datetime = utcnow() + timedelta(seconds=backoff_s(attempts, settings))
    outbox.schedule_retry(event["id"], attempts, at, error)
    log.warning(
        "event delivery failed; will retry",
        channel=event["channel"],
        error=error,
        attempts=attempts,
        retry_at=at.isoformat(),
        **bound,
    )
    return "retry"


def send(event: dict[str, Any], settings: Settings) -> None:
    if event["channel"] == "dramatiq":
        queue_name, actor_name = str(event["target"]).split(":", 1)
        message: Message[Any] = Message(
            queue_name=queue_name,
            actor_name=actor_name,
            args=(event["payload"],),
            kwargs={},
            options={},
            message_id=event["id"],
            message_timestamp=int(utcnow().timestamp() * 1000),
        )
        producer_broker().enqueue(message)
        return
    if event["channel"] == "http":
        post_callback(str(event["target"]), event["event_id"], event["payload"], settings)
        return
    raise DeliveryFailed(f"unknown channel {event['channel']!r}")


def _pinned(url: str, address: str | None) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL to connect to (the checked address in place of the host), the Host header and
    the TLS server name, so the connection goes where ``resolve_public`` looked."""
    parts = urlsplit(url)
    if address is None or parts.hostname is None:
        return url, {}, {}
    host = parts.hostname
    literal = f"[{address}]" if ":" in address else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    return pinned, {"Host": host_header}, {"sni_hostname": host}


def post_callback(url: str, event_id: str, payload: dict[str, Any], settings: Settings) -> None:
    if settings.notify_signing_secret is None:
        raise callbacks.CallbackRefused("NOTIFY_SIGNING_SECRET is not set: callbacks are off")
    address = callbacks.resolve_public(url, settings)
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    now = utcnow()
    signature = Webhook(settings.notify_signing_secret.get_secret_value()).sign(
        msg_id=event_id, timestamp=now, data=body
    )
    target, headers, extensions = _pinned(url, address)
    headers |= {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "user-agent": "renderq-notifications",
    }
    import httpx  # loaded by _http.get() at the latest

    try:
        response = _http.get().request(
            "POST",
            target,
            content=body.encode(),
            headers=headers,
            extensions=extensions,
            timeout=settings.notify_timeout_s,
        )
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"callback answered {response.status_code}")


def sweep(limit: int = 500) -> Counter[str]:
    """Deliver every due event (retries, and those a lost fast path left behind)."""
    return deliver(outbox.due_event_ids(limit))
