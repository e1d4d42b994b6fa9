"""The one settings object for producers, workers, the scheduler and the scripts.

Everything configurable is read from the environment here and nowhere else, so the README's
settings table and this class are the whole story. Values are validated at start-up: a worker
with a malformed ``RENDER_RATE_LIMIT`` should refuse to start, not fail its first render.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.rate_spec import parse_rates

#: The Remotion version the Lambda function is deployed with. The function rejects requests
#: from any other client version, so this, the ``remotion-lambda`` pin in pyproject.toml and
#: the default function name all move together.
REMOTION_VERSION = "4.0.539"
DEFAULT_FUNCTION_NAME = "remotion-render-4-0-539-mem2048mb-disk2048mb-120sec"

#: Settings renamed so that every duration names its unit: old environment name -> new one.
#: The old names keep working for one release (0.2) and are reported at start-up.
RENAMED_ENV = {
    "POLL_INTERVAL": "POLL_INTERVAL_S",
    "RENDER_TIMEOUT": "RENDER_TIMEOUT_S",
    "RECONCILE_INTERVAL": "RECONCILE_INTERVAL_S",
}


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _renamed(new: str) -> AliasChoices:
    old = next(k for k, v in RENAMED_ENV.items() if v == new)
    return AliasChoices(new.lower(), old.lower())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None, case_sensitive=False, extra="ignore", frozen=True
    )

    # --- connections -------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Prefix of every Redis key renderq and Dramatiq write; lets several deployments (or test
    #: runs) share one Redis.
    redis_namespace: str = "renderq"
    database_url: str = "sqlite:///renderq.db"
    #: Seconds a SQLite connection waits for a lock before failing.
    sqlite_busy_timeout_s: float = 30.0
    db_pool_size: int = 10

    # --- Remotion Lambda -------------------------------------------------------------------
    remotion_aws_access_key_id: SecretStr | None = None
    remotion_aws_secret_access_key: SecretStr | None = None
    remotion_aws_region: str = "us-east-1"
    remotion_lambda_function_name: str = DEFAULT_FUNCTION_NAME
    remotion_serve_url: str = (
        "https://remotionlambda-example.s3.amazonaws.com/sites/renderq/index.html"
    )
    #: Seconds to wait for a TCP connection to the Lambda API.
    lambda_connect_timeout_s: float = 5.0
    #: Seconds to wait for a Lambda invoke to answer. ``start`` only launches the render and
    #: returns quickly; a long wait here widens the window in which a start may have happened
    #: without us knowing.
    lambda_read_timeout_s: float = 15.0
    #: Parallel progress calls per poll batch (per worker thread running a batch).
    poll_concurrency: int = 16
    #: ``framesPerLambda`` passed to Remotion; None uses Remotion's own default formula, which
    #: renderq computes and passes explicitly so its budget estimate is what Lambda runs.
    frames_per_lambda: int | None = None
    #: Check at worker start that the function exists and runs ``REMOTION_VERSION`` (one
    #: ``info`` invocation per worker process); a worker that cannot render refuses to start.
    lambda_preflight: bool = True

    # --- Remotion's production settings (passed on every start; see the README) -------------
    #: Remotion's bucket in the region. Unset, every start lists the account's buckets inside
    #: the function to find it (and large input props go to the bucket the client finds).
    remotion_bucket_name: str | None = None
    #: ACL of the output: ``private`` (default; ``shared.renders.download_url`` presigns a
    #: link), ``public`` (world-readable URL) or ``no-acl`` (the bucket's policy decides).
    remotion_privacy: Literal["private", "public", "no-acl"] = "private"
    #: Remotion's lifecycle prefix: the render folder (output included) is deleted after this
    #: long by the bucket's lifecycle rules (``enableFolderExpiry``). Bounds the bucket, which
    #: keeps outName recovery fast. Empty keeps renders forever.
    remotion_delete_after: Literal["1-day", "3-days", "7-days", "30-days"] | None = "30-days"
    #: ``play-in-browser`` or ``download`` (a Content-Disposition with the output's name).
    remotion_download_behavior: Literal["play-in-browser", "download"] = "play-in-browser"
    #: Retries of a chunk that failed with an error Remotion considers flaky (per chunk).
    remotion_max_retries: int = 1
    #: Remotion's ``timeoutInMilliseconds``: how long a ``delayRender()`` may block a frame
    #: (not the Lambda timeout, which the function name carries). Remotion's minimum is 7,000.
    remotion_timeout_ms: int = 30_000
    #: Seconds a presigned link to a private output stays valid (at most 7 days).
    output_url_expires_s: int = 3_600
    #: Times a render that failed *inside* Lambda for lack of concurrency is started again as a
    #: new attempt before it fails with ``lambda_throttled``.
    max_throttle_restarts: int = 5
    #: Delay before the first such new attempt; it doubles with each further one (with
    #: jitter), up to ``throttle_restart_backoff_max_ms``, so the account's running renders
    #: can finish before the throttled ones come back.
    throttle_restart_backoff_ms: int = Field(default=5_000, ge=0)
    throttle_restart_backoff_max_ms: int = Field(default=120_000, ge=0)

    # --- events: Remotion's webhooks in, cancellation, notifications out (docs/events.md) ------
    #: Where Remotion POSTs a render's success/error/timeout webhook: the web process's
    #: ``/webhooks/remotion`` as reachable from AWS. Unset: no webhooks, polling only.
    remotion_webhook_url: str | None = None
    #: Signs Remotion's webhooks (HMAC-SHA512); sent to Remotion with every start, never logged.
    remotion_webhook_secret: SecretStr | None = None
    #: Comma-separated secrets still accepted while a rotation is under way (renders started
    #: before it keep signing with the old one); not used for new starts.
    remotion_webhook_previous_secrets: SecretStr | None = None
    #: Largest webhook body accepted; anything bigger is answered 413 unread.
    webhook_max_body_bytes: int = 1024 * 1024
    #: With webhooks configured, still poll every ``POLL_INTERVAL_S`` to show progress; off,
    #: renders are polled only every ``SAFETY_POLL_INTERVAL_S`` (a lost webhook is caught then).
    poll_progress_with_webhooks: bool = False
    #: Seconds between two progress calls for a render while webhooks report its end.
    safety_poll_interval_s: float = 30.0
    #: Start every render with ``enableCancellation`` (one S3 HEAD per second per renderer:
    #: about $0.0001 per render at S3's request price; see docs/events.md). Off, a render
    #: cannot be stopped once started, and RENDER_TIMEOUT_S no longer stops billing.
    remotion_enable_cancellation: bool = True
    #: A cancelled render's Lambda budget is released when Remotion reports it stopped, or at
    #: the latest this many seconds after the cancel.
    cancel_stop_bound_s: float = 60.0
    #: renderq's queue for delivering notification events to producers.
    notify_queue: str = "render-events"
    #: Standard Webhooks signing secret for callbacks (``whsec_`` + base64); required when a
    #: render names a ``callback_url``; never logged.
    notify_signing_secret: SecretStr | None = None
    #: Delivery attempts per event and channel before it is dead-lettered (with the backoff
    #: below, 15 attempts span about 6.4 hours).
    notify_max_attempts: int = 15
    notify_backoff_base_s: float = 10.0
    notify_backoff_max_s: float = 3_600.0
    #: Seconds a callback may take to answer.
    notify_timeout_s: float = 10.0
    #: Seconds between sweeps for due deliveries (retries, and events a crash left unsent).
    notify_sweep_interval_s: float = 5.0
    #: Comma-separated hosts a ``callback_url`` may name despite the rules (http, internal).
    callback_allowed_hosts: str = ""
    #: Allow callbacks to internal addresses at all (a closed network of trusted producers).
    callback_allow_private: bool = False

    # --- the web process ------------------------------------------------------------------------
    web_host: str = "0.0.0.0"
    web_port: int = 8000
    #: Seconds in-flight requests get to finish on SIGTERM.
    web_graceful_timeout_s: float = 20.0
    #: uvicorn worker processes of ``python -m web`` (one per core is the usual choice; the
    #: HTTP API's request rate scales with them, see docs/performance.md).
    web_workers: int = Field(default=1, ge=1)

    # --- the HTTP API (web/api/, README "HTTP API") ----------------------------------------------
    #: Largest request body the API reads; bigger ones are answered 413 before being read.
    #: Keep it above ``MAX_INPUT_PROPS_BYTES`` (a render's props travel in its body).
    api_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: Most renders one ``POST /v1/renders:batch`` may carry (all stored, or none).
    api_batch_max_renders: int = Field(default=500, ge=1)
    #: Requests per API key, e.g. ``100/second`` or ``20/1s,1000/minute``; shared by every web
    #: replica (a sliding window in Redis). Over it: 429 with ``Retry-After``.
    api_request_rate_limit: str = "100/second"
    #: Seconds a web process trusts an API key it verified (revocation takes effect within this
    #: long); 0 reads the key's row on every request.
    api_key_cache_s: float = Field(default=5.0, ge=0)

    # --- the web console (web/console/) ---------------------------------------------------------
    #: The console is served over https (directly or behind a TLS-terminating proxy): its
    #: session cookie is then marked ``Secure``. Leave off only for http on localhost.
    console_https: bool = False
    #: Seconds a console login lasts (the session cookie and its row expire together).
    console_session_ttl_s: float = 8 * 3600.0
    #: Failed logins per operator name per minute before further attempts are refused (429)
    #: until the minute is over; each attempt also costs one scrypt (about 50 ms).
    console_login_attempts_per_min: int = Field(default=10, ge=1)
    #: Milliseconds between two refreshes of a live console page (overview, render page).
    console_refresh_ms: int = Field(default=1_500, ge=200)

    # --- render limits (see shared/render_limits.py) -----------------------------------------
    #: Longest side in pixels; with ``max_short_side`` this is "1080p in either orientation".
    max_long_side: int = 1920
    #: The short side may not exceed this: 1920x1080 and 1080x1920 pass, 1920x1440 does not.
    max_short_side: int = 1080
    max_duration_s: float = 20.0
    min_fps: int = 1
    max_fps: int = 60
    #: Serialized ``input_props`` limit. Props over 193,976 bytes travel through S3
    #: (``input-props/<sha256>.json`` in Remotion's bucket), so this is bounded by what the
    #: database row and the queue message should carry, not by Lambda's payload limit.
    max_input_props_bytes: int = 4 * 1024 * 1024

    # --- fairness: per-user rate limit and the Lambda concurrency budget ---------------------
    #: Render starts per user, e.g. ``5/hour``, ``100/day``, ``2/10s``, or several
    #: comma-separated rates that all apply. Per-user overrides live in ``user_limits``.
    render_rate_limit: str = "5/hour"
    #: Added to every rate-limit window: a permit is taken a few ms before the Lambda start, so
    #: the window is widened by this much to keep *starts* (not just permits) within the limit.
    rate_limit_margin_ms: int = 250
    #: Seconds a per-user override read from the database is cached in each process.
    user_limit_cache_s: float = 30.0
    #: Estimated Lambda functions (1 + renderer chunks per render) allowed in flight at once,
    #: across all renders; keep it below the account's concurrency quota (1,000 by default).
    lambda_concurrency_budget: int = 900
    #: Several Lambda pools (regions, accounts, functions) as a JSON list, in preference
    #: order: ``[{"name": "use1", "budget": 900, "region": "us-east-1", "function_name": ..,
    #: "serve_url": .., "bucket": .., "endpoint_url": ..}]``; omitted fields take the
    #: ``REMOTION_*`` values. Empty: one pool ``default`` of ``LAMBDA_CONCURRENCY_BUDGET``.
    lambda_pools: str | None = None
    #: A throttled pool's effective budget is halved, never below this share of its budget.
    lambda_budget_floor_share: float = Field(default=0.1, gt=0, le=1)
    #: Seconds between two halvings of one pool (one burst of throttling halves it once).
    lambda_budget_shrink_cooldown_s: float = 5.0
    #: Functions a second a shrunk budget grows back by, up to the configured budget.
    lambda_budget_recovery_per_s: float = Field(default=1.0, gt=0)
    #: The most frames one renderer function may take when a render is chunked coarser to fit
    #: the budget (each renderer must finish within the function's timeout).
    max_frames_per_lambda: int = Field(default=600, ge=4)
    #: Plan defaults (per-user overrides live in ``user_limits``): share of the budget
    #: relative to other users, renders in flight at once (0: no cap), priority class 0..9.
    default_user_weight: float = Field(default=1.0, gt=0)
    max_renders_in_flight_per_user: int = Field(default=0, ge=0)
    default_priority: int = Field(default=0, ge=0, le=9)

    # --- lifecycle ----------------------------------------------------------------------------
    #: Seconds between two progress calls for the same render in ``rendering``.
    poll_interval_s: float = Field(default=2.0, validation_alias=_renamed("POLL_INTERVAL_S"))
    #: Seconds between poll sweeps (at most ``POLL_INTERVAL_S``). Each sweep polls only the
    #: renders that are due (last polled, or started, an interval ago), so the calls are spread
    #: over the interval instead of arriving in one burst that starves starts of CPU; every
    #: render is still polled once per interval.
    poll_tick_s: float = 0.2
    #: Renders per poll batch message.
    poll_batch_size: int = 100
    #: Poll a render once more when its progress so far predicts its end before its next
    #: regular poll (``worker/poll_forecast.py``), at the first sweep after that time: one or
    #: two progress calls more per render, completion seen within a tick of Remotion reporting
    #: it instead of up to an interval later. Off while webhooks report the end without
    #: progress polling.
    poll_at_predicted_end: bool = True
    #: Seconds after ``started_at`` when a render that is not done is failed with ``timeout``.
    render_timeout_s: float = Field(default=300.0, validation_alias=_renamed("RENDER_TIMEOUT_S"))
    #: Consecutive failed progress calls after which a render is failed with ``poll_failed``.
    max_poll_failures: int = 30
    #: Start attempts that hit transient Lambda errors before the render is failed.
    max_start_attempts: int = 8

    #: Seconds added to the Lambda timeouts to make the start-claim lease (see claim_lease_s).
    claim_margin_s: float = 10.0
    #: Seconds between reconciliation passes (pending renders whose message was lost).
    reconcile_interval_s: float = Field(
        default=30.0, validation_alias=_renamed("RECONCILE_INTERVAL_S")
    )
    #: A pending render younger than this is never re-enqueued (its producer may still be
    #: between inserting the row and sending the message).
    reconcile_grace_s: float = 60.0

    # --- broker -----------------------------------------------------------------------------
    #: Milliseconds without a heartbeat after which a worker is presumed dead and its unacked
    #: messages are redelivered. Dramatiq's default (60 s) plus rare maintenance makes
    #: redelivery take minutes.
    broker_heartbeat_timeout_ms: int = 15_000
    #: Out of 1,000,000 broker calls, how many run maintenance (requeueing dead workers'
    #: messages). Dramatiq's default is 1,000 (0.1%).
    broker_maintenance_chance: int = 100_000
    #: Longest pause, in ms, of a consumer whose queue is empty before it asks Redis again,
    #: while the queue had a message in the last ``QUEUE_QUIET_AFTER_S``.
    queue_idle_poll_ms: int = 100
    #: The same once the queue has been quiet longer: an idle deployment should cost Redis
    #: and CPU nearly nothing; the first message after a lull waits up to this long.
    queue_quiet_poll_ms: int = 1_000
    queue_quiet_after_s: float = 0.5
    #: Producers ring a queue's doorbell with every enqueue and idle consumers wait on it
    #: (``shared.doorbell``), so a message is fetched when it arrives rather than when the
    #: consumer's pause ends; the pauses above stay the longest wait. Off: Dramatiq's polling.
    queue_doorbell: bool = True
    start_queue: str = "renders"
    #: Start messages of renders the Lambda budget admitted (woken from the line). Their own
    #: queue, consumed by the same workers as ``START_QUEUE``: room is held for them, so they
    #: must not wait behind a backlog of new renders still to be parked.
    admitted_queue: str = "renders-admitted"
    poll_queue: str = "render-polls"
    #: Hard limit in ms for one actor run (Dramatiq's TimeLimit).
    actor_time_limit_ms: int = 120_000
    #: glibc malloc arenas per worker process (worker/malloc_arenas.py); 0 keeps glibc's
    #: default of eight per core, which grows RSS with the thread count.
    worker_malloc_arenas: int = Field(default=2, ge=0)
    #: Freeze each worker and web process's start-up objects out of the cyclic garbage
    #: collector's sight before it serves (shared/frozen_heap.py): a full collection then
    #: skips them instead of stopping every thread of the process for 100-350 ms.
    gc_freeze_at_start: bool = True

    #: Testing only: comma-separated failpoint names (worker/failpoints.py) that kill the
    #: first worker process reaching them. Never set in production.
    failpoints: str = ""

    # --- metrics ------------------------------------------------------------------------
    #: Port of each dramatiq master's Prometheus endpoint (``/metrics``); 0 turns metrics off.
    metrics_port: int = 9191
    metrics_host: str = "0.0.0.0"
    #: Where worker processes write samples for aggregation (default: <tmp>/renderq-metrics).
    metrics_dir: str | None = None

    # --- logging ------------------------------------------------------------------------
    #: DEBUG, INFO, WARNING, ERROR or CRITICAL, in any case.
    log_level: str = "INFO"
    #: ``json`` always, ``console`` always, or ``auto`` (console on a TTY, JSON otherwise).
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("render_rate_limit", "api_request_rate_limit")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        parse_rates(value)
        return value

    @field_validator(
        "remotion_delete_after",
        "remotion_bucket_name",
        "remotion_webhook_url",
        "remotion_webhook_secret",
        "remotion_webhook_previous_secrets",
        "notify_signing_secret",
        "lambda_pools",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"{value!r} is not one of {', '.join(_LOG_LEVELS)}")
        return level

    @field_validator("remotion_timeout_ms")
    @classmethod
    def _remotion_minimum(cls, value: int) -> int:
        if value < 7_000:
            raise ValueError("Remotion requires timeoutInMilliseconds >= 7000")
        return value

    @field_validator("output_url_expires_s")
    @classmethod
    def _presign_range(cls, value: int) -> int:
        if not 1 <= value <= 7 * 24 * 3600:
            raise ValueError("a presigned S3 URL is valid for 1 s to 7 days")
        return value

    @field_validator("queue_idle_poll_ms")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be >= 1")
        return value

    @field_validator("poll_interval_s", "poll_tick_s", "render_timeout_s")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be > 0")
        return value

    @property
    def claim_lease_s(self) -> float:
        """How long a start claim protects a render from a second start.

        It must outlast the longest possible Lambda ``start`` call (botocore retries are off,
        so connect + read timeout) plus the database work around it, or a redelivered message
        could start the render again while the first call is still in flight.
        """
        return self.lambda_connect_timeout_s + self.lambda_read_timeout_s + self.claim_margin_s

    @property
    def webhooks_enabled(self) -> bool:
        return bool(self.remotion_webhook_url and self.remotion_webhook_secret)

    @property
    def effective_poll_interval_s(self) -> float:
        """How often a render in flight is polled: every ``POLL_INTERVAL_S``, or only every
        ``SAFETY_POLL_INTERVAL_S`` when webhooks report the end and progress is not wanted."""
        if self.webhooks_enabled and not self.poll_progress_with_webhooks:
            return max(self.poll_interval_s, self.safety_poll_interval_s)
        return self.poll_interval_s

    def webhook_secrets(self) -> list[str]:
        """The secrets a Remotion webhook may be signed with: the current one first."""
        secrets = [self.remotion_webhook_secret] if self.remotion_webhook_secret else []
        previous = self.remotion_webhook_previous_secrets
        values = [s.get_secret_value() for s in secrets]
        if previous is not None:
            values += [v.strip() for v in previous.get_secret_value().split(",") if v.strip()]
        return values

    @property
    def sweep_every_s(self) -> float:
        """Seconds between poll ticks, each starting a sweep of the renders that are due."""
        return min(self.poll_tick_s, self.poll_interval_s)


def renamed_in_environment(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(old, new) for every renamed setting still given by its old environment name."""
    names = {k.upper() for k in (os.environ if environ is None else environ)}
    return [(old, new) for old, new in RENAMED_ENV.items() if old in names]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once; tests call ``get_settings.cache_clear()``."""
    return Settings()
