"""Webhooks: signed POSTs with Remotion's retries, sent from a small pool, plus their faults.

Transport as in ``serverless/src/invoke-webhook.ts``: the body is ``JSON.stringify(payload)``
(the exact bytes the signature covers, see :mod:`devtools.emulator.jsjson`), the headers
are ``Content-Type``, ``Content-Length`` (the JavaScript string length), ``X-Remotion-Mode:
production``, ``X-Remotion-Signature: sha512=<HMAC-SHA512 hex>`` or ``NO_SECRET_PROVIDED``
and ``X-Remotion-Status``; each attempt has a 10 s timeout, redirects are followed, a
non-2xx answer is a failure, and there are three attempts 500 ms and 1,000 ms apart. The
payloads themselves are built by :mod:`devtools.emulator.launch`.

Faults (control API, globally by count or per composition in a rule): *drop* (never sent;
the function believes it was delivered), *delay* (sent that many ms late), *duplicate*
(the same bytes twice) and *reorder* (held back, sent once the next webhook has been
answered).

HTTP runs outside the emulator's lock on a lazily created pool of a few threads, so a slow
receiver never stalls the clock; results come back as events at the time they arrive.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from devtools.emulator import jsjson, texts
from devtools.emulator.constants import JSONDict
from devtools.emulator.render import Render
from devtools.emulator.state import EmulatorState
from devtools.emulator.texts import RemotionError

_MAX_REDIRECTS = 20


def signature(body: bytes, secret: str | None) -> str:
    """invoke-webhook.ts calculateSignature."""
    if not secret:
        return "NO_SECRET_PROVIDED"
    return "sha512=" + hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()


@dataclass(eq=False)
class Delivery:
    """One webhook of one render, with its attempts."""

    render: Render
    url: str
    kind: str
    body: bytes
    headers: tuple[tuple[str, str], ...]
    on_done: Callable[[float, RemotionError | None], None]
    epoch: int
    duplicate: bool = False
    reorder: bool = False
    attempts: int = 0


def post(
    url: str, body: bytes, headers: tuple[tuple[str, str], ...], timeout_s: float
) -> RemotionError | None:
    """fetch(url, {method: 'POST', redirect: 'follow', signal: AbortSignal.timeout(...)})."""
    deadline = time.monotonic() + timeout_s
    method, current = "POST", url
    try:
        for _ in range(_MAX_REDIRECTS + 1):
            parts = urlsplit(current)
            connection_class = (
                http.client.HTTPSConnection
                if parts.scheme == "https"
                else http.client.HTTPConnection
            )
            remaining = max(0.001, deadline - time.monotonic())
            connection = connection_class(parts.hostname or "", parts.port, timeout=remaining)
            try:
                path = parts.path or "/"
                if parts.query:
                    path += "?" + parts.query
                connection.putrequest(method, path, skip_accept_encoding=True)
                sent = headers if method == "POST" else ()
                for name, value in sent:
                    connection.putheader(name, value)
                connection.endheaders(body if method == "POST" else None)
                response = connection.getresponse()
                response.read()
                status = response.status
                location = response.getheader("Location")
            finally:
                connection.close()
            if status in (301, 302, 303, 307, 308) and location:
                # fetch: 303 (and 301/302 for POST) become GET; 307/308 re-send the body.
                if status in (301, 302, 303):
                    method = "GET"
                current = urljoin(current, location)
                continue
            if not 200 <= status < 300:
                return RemotionError(texts.webhook_status(url, status))
            return None
        return RemotionError("fetch failed", "TypeError")
    except TimeoutError:
        return RemotionError(texts.WEBHOOK_TIMEOUT, "TimeoutError")
    except (OSError, http.client.HTTPException):
        return RemotionError("fetch failed", "TypeError")


class WebhooksMixin(EmulatorState):
    """LambdaEmulator's webhook sending (see the module docstring)."""

    _held: list[Delivery]
    _pool: ThreadPoolExecutor | None

    def _take_outbox(self) -> list[Callable[[], None]]:
        items, self._outbox = self._outbox, []
        return items

    def _run_outbox(self, items: list[Callable[[], None]]) -> None:
        """Hand HTTP work to the pool (call without the lock)."""
        if not items:
            return
        pool = self._pool
        if pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(8, thread_name_prefix="emulator-webhook")
                pool = self._pool
        for item in items:
            try:
                pool.submit(item)
            except RuntimeError:  # shut down: the emulator is closing
                return

    def _send_webhook(
        self,
        now: float,
        render: Render,
        payload: JSONDict,
        on_done: Callable[[float, RemotionError | None], None],
    ) -> None:
        webhook = render.webhook
        assert webhook is not None
        text = jsjson.dumps(payload)
        body = text.encode("utf-8", "surrogatepass")
        headers = (
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(text.encode("utf-16-le")) // 2)),
            ("X-Remotion-Mode", "production"),
            ("X-Remotion-Signature", signature(body, webhook.get("secret"))),
            ("X-Remotion-Status", str(payload["type"])),
        )
        delivery = Delivery(
            render,
            str(webhook.get("url")),
            str(payload["type"]),
            body,
            headers,
            on_done,
            self._epoch,
        )
        counters, faults, directive = self._counters.webhooks, self._faults, render.directive
        counters[f"webhooks_{delivery.kind}"] += 1
        if faults.webhook_drop or directive.webhook_drop:
            if faults.webhook_drop:
                faults.webhook_drop -= 1
            counters["dropped"] += 1
            on_done(now, None)
            return
        if faults.webhook_duplicate or directive.webhook_duplicate:
            if faults.webhook_duplicate:
                faults.webhook_duplicate -= 1
            delivery.duplicate = True
        if faults.webhook_reorder or directive.webhook_reorder:
            if faults.webhook_reorder:
                faults.webhook_reorder -= 1
            delivery.reorder = True
        delay_ms = (
            directive.webhook_delay_ms
            if directive.webhook_delay_ms is not None
            else faults.webhook_delay_ms
        )
        if delay_ms:
            counters["delayed"] += 1
            self._push(now + delay_ms / 1000, self._ev_webhook_attempt, delivery, auto=True)
        else:
            self._ev_webhook_attempt(now, delivery)

    def _ev_webhook_attempt(self, now: float, delivery: Delivery) -> None:
        if delivery.epoch != self._epoch or delivery.render.launch_state not in ("running",):
            return
        delivery.attempts += 1
        if delivery.reorder and delivery.attempts == 1:
            self._counters.webhooks["reordered"] += 1
            self._held.append(delivery)
            return
        self._queue_post(delivery, copy=False)
        if delivery.duplicate and delivery.attempts == 1:
            self._counters.webhooks["duplicated"] += 1
            self._queue_post(delivery, copy=True)

    def _queue_post(self, delivery: Delivery, *, copy: bool) -> None:
        timeout_s = self._faults.webhook_timeout_ms / 1000
        self._counters.webhooks["sent"] += 1

        def send() -> None:
            if delivery.render.webhook_sent_at is None:
                delivery.render.webhook_sent_at = time.monotonic()
            error = post(delivery.url, delivery.body, delivery.headers, timeout_s)
            self._webhook_result(delivery, error, copy)

        self._outbox.append(send)

    def _webhook_result(self, delivery: Delivery, error: RemotionError | None, copy: bool) -> None:
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            if delivery.epoch == self._epoch and not copy:
                self._webhook_outcome(now, delivery, error)
                if self._held and delivery.attempts == 1:  # reorder: after the next one
                    held, self._held = self._held, []
                    for late in held:
                        self._queue_post(late, copy=False)
            items = self._take_outbox()
        self._run_outbox(items)

    def _webhook_outcome(self, now: float, delivery: Delivery, error: RemotionError | None) -> None:
        counters = self._counters.webhooks
        if error is None:
            counters["delivered"] += 1
            delivery.on_done(now, None)
            return
        counters["attempt_failures"] += 1
        backoff = self._faults.webhook_backoff_ms
        if delivery.attempts <= len(backoff):
            self._push(
                now + backoff[delivery.attempts - 1] / 1000,
                self._ev_webhook_attempt,
                delivery,
                auto=True,
            )
            return
        counters["failed"] += 1
        delivery.on_done(now, error)
