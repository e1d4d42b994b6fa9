"""Remotion Lambda, through Remotion's own Python client, with the behaviour a queue needs.

What differs from using ``RemotionClient`` directly (its source: ``remotion_lambda/
remotionclient.py`` in the pinned 4.0.539 package):

* One boto3 Lambda client and one S3 client per process, reused (``shared.aws``). The stock
  client builds a new one on every call (~10 ms of CPU, no connection reuse), which caps
  polling near 90 calls/s.
* botocore never retries a Lambda call. A retried ``start`` whose first attempt reached Lambda
  starts a second, paid render; the queue decides when to try again, with the claim held.
* Every failure is mapped to one of four exceptions (``worker.lambda_errors``) and every fatal
  progress error to what it means (throttled inside the render, cancelled, timed out, failed).
* Large input props go to ``REMOTION_BUCKET_NAME`` when it is set: the stock client uploads
  them to the bucket it discovers by listing, while the function reads them from the render's
  bucket (``packages/serverless-client/src/compress-props.ts``), so the two must agree.
* Remotion's production settings (privacy, deleteAfter, downloadBehavior, maxRetries,
  timeoutInMilliseconds, the bucket) are passed on every start.

The emulator is reached like AWS is: boto3 honours ``AWS_ENDPOINT_URL_LAMBDA`` and
``AWS_ENDPOINT_URL_S3``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remotion_lambda import RemotionClient, RenderMediaParams
from remotion_lambda.models import PlayInBrowser, Privacy, ShouldDownload, Webhook
from remotion_lambda.version import VERSION as CLIENT_VERSION

from shared import aws
from shared.per_process import PerProcess
from shared.pools import Pool, pool_named
from shared.settings import REMOTION_VERSION, Settings, get_settings
from worker import start_recovery
from worker.lambda_errors import (
    FatalKind,
    LambdaConfigError,
    LambdaTransient,
    classify_fatal,
    map_error,
)
from worker.start_recovery import StartedRender

if CLIENT_VERSION != REMOTION_VERSION:  # pragma: no cover - guarded by the pyproject pin
    raise ImportError(
        f"remotion-lambda {CLIENT_VERSION} is installed but renderq targets {REMOTION_VERSION}; "
        "the deployed function rejects mismatched versions"
    )


@dataclass(frozen=True)
class RenderProgress:
    overall: float
    done: bool
    output_url: str | None
    output_size_bytes: int | None
    cost_usd: float | None
    #: Remotion's message of the first fatal error, when the render cannot finish.
    fatal_error: str | None
    #: What that error means (None when there is none).
    fatal_kind: FatalKind | None = None


def _find_json_objects(text: str) -> list[str]:
    """Top-level JSON objects in a response stream, respecting strings.

    Remotion's parser counts braces and ignores strings, so an error message containing "{"
    turns a clear Remotion error into a parse failure. This scanner uses the JSON decoder.
    """
    decoder = json.JSONDecoder()
    objects: list[str] = []
    i = 0
    while (i := text.find("{", i)) != -1:
        try:
            _, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        objects.append(text[i:end])
        i = end
    return objects


class _RenderqRemotionClient(RemotionClient):
    """``RemotionClient`` with shared (thread-safe) boto3 clients and the configured bucket."""

    def __init__(self, *args: Any, pool: Pool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pool = pool
        self._bucket_name = pool.bucket

    def _create_lambda_client(self) -> Any:
        return aws.lambda_client(self._pool.region, self._pool.endpoint_url)

    def _create_s3_client(self) -> Any:
        return aws.s3_client(self._pool.region, self._pool.endpoint_url)

    def _get_or_create_bucket(self) -> str:
        if self._bucket_name:
            return self._bucket_name
        return str(super()._get_or_create_bucket())

    def _find_json_objects(self, input_string: str) -> list[str]:
        return _find_json_objects(input_string)


CallObserver = Callable[[str, float, "str | None"], None]
_observer: CallObserver | None = None


def set_call_observer(observer: CallObserver | None) -> None:
    """Receive (operation, seconds, error kind or None) for every Lambda call (metrics)."""
    global _observer
    _observer = observer


def _observe(op: str, started: float, error: BaseException | None) -> None:
    if _observer is not None:
        _observer(op, time.perf_counter() - started, type(error).__name__ if error else None)


def _first_lines(message: str) -> str:
    """Remotion's message without the stack it sometimes carries (a renderer's error reaches
    the launch function as its whole stack string: ``launch.ts``, ``stream-renderer.ts``)."""
    return message.split("\n    at ", 1)[0].strip()


class RenderLambda:
    """The only object in renderq that invokes the Remotion function (one per pool)."""

    def __init__(self, pool: Pool, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.pool = pool
        self._client = _RenderqRemotionClient(
            region=pool.region,
            serve_url=pool.serve_url,
            function_name=pool.function_name,
            session=aws.session(),
            pool=pool,
        )

    def start(
        self,
        *,
        composition: str,
        input_props: dict[str, Any],
        codec: str,
        width: int,
        height: int,
        fps: int,
        duration_in_frames: int,
        out_name: str,
        frames_per_lambda: int | None = None,
        webhook_data: dict[str, Any] | None = None,
    ) -> StartedRender:
        """Start a render. ``webhook_data`` is the webhook's ``customData`` (what the receiver
        needs to find the render and its attempt), sent when webhooks are configured."""
        s = self.settings
        webhook = None
        if s.webhooks_enabled and webhook_data is not None:
            assert s.remotion_webhook_url and s.remotion_webhook_secret  # webhooks_enabled
            webhook = Webhook(
                secret=s.remotion_webhook_secret.get_secret_value(),
                url=s.remotion_webhook_url,
                customData=webhook_data,
            )
        download: PlayInBrowser | ShouldDownload = (
            ShouldDownload(type="download", fileName=out_name)
            if s.remotion_download_behavior == "download"
            else PlayInBrowser(type="play-in-browser")
        )
        params = RenderMediaParams(
            composition=composition,
            input_props=input_props,
            codec=codec,
            # Forced, so the limits we checked are the limits Lambda renders with.
            force_width=width,
            force_height=height,
            force_fps=fps,
            force_duration_in_frames=duration_in_frames,
            out_name=out_name,
            frames_per_lambda=frames_per_lambda or s.frames_per_lambda,
            bucket_name=self.pool.bucket,
            privacy=Privacy(s.remotion_privacy),
            delete_after=s.remotion_delete_after,
            download_behavior=download,
            max_retries=s.remotion_max_retries,
            timeout_in_milliseconds=s.remotion_timeout_ms,
            enable_cancellation=s.remotion_enable_cancellation,
            webhook=webhook,
        )
        started = time.perf_counter()
        try:
            response = self._client.render_media_on_lambda(params)
        except Exception as exc:
            mapped = map_error(exc, is_start=True)
            _observe("start", started, mapped)
            raise mapped from exc
        _observe("start", started, None)
        if response is None:  # pragma: no cover - the client returns None only on empty bodies
            raise LambdaTransient("empty start response", may_have_started=True)
        return StartedRender(render_id=response.render_id, bucket=response.bucket_name)

    def find_render(
        self, out_name: str, *, bucket: str | None = None, since: datetime | None = None
    ) -> StartedRender | None:
        """The render an earlier, ambiguous start launched (``worker.start_recovery``)."""
        bucket = bucket or self.pool.bucket
        try:
            buckets = [bucket] if bucket else self._client._get_remotion_buckets()
        except Exception as exc:
            raise map_error(exc, is_start=False) from exc
        prefixes = start_recovery.shard_prefixes(self.settings.remotion_delete_after)
        s3 = aws.s3_client(self.pool.region, self.pool.endpoint_url)
        return start_recovery.find_render(s3, buckets, out_name, since, prefixes)

    def progress(self, render_id: str, bucket: str) -> RenderProgress:
        started = time.perf_counter()
        try:
            progress = self._client.get_render_progress(render_id, bucket)
        except Exception as exc:
            mapped = map_error(exc, is_start=False)
            _observe("progress", started, mapped)
            raise mapped from exc
        _observe("progress", started, None)
        if progress is None:  # pragma: no cover
            raise LambdaTransient("empty progress response")
        data = progress.__dict__
        costs = data.get("costs") or {}
        cost = costs.get("accruedSoFar") if isinstance(costs, dict) else None
        fatal, kind = None, None
        if data.get("fatalErrorEncountered"):
            errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
            fatal_errors = [e for e in errors if e.get("isFatal") and not e.get("willRetry")]
            first = (fatal_errors or errors or [{}])[0]
            name, message = first.get("name"), str(first.get("message") or "fatal error")
            kind = classify_fatal(name, message, first.get("stack"))
            fatal = _first_lines(message)
            if name and name not in ("Error", "") and not fatal.startswith(name):
                fatal = f"{name}: {fatal}"
        return RenderProgress(
            overall=float(data.get("overallProgress") or 0.0),
            done=bool(data.get("done")),
            output_url=data.get("outputFile"),
            output_size_bytes=data.get("outputSizeInBytes"),
            cost_usd=float(cost) if cost is not None else None,
            fatal_error=fatal,
            fatal_kind=kind,
        )

    def cancel(self, render_id: str, bucket: str) -> None:
        """Ask Remotion to stop a render: Remotion's client reads its ``progress.json`` and
        writes ``renders/<id>/cancel.json``, which every renderer checks once a second
        (``docs/lambda/cancellation.mdx``). Raises ``LambdaRejected`` for a render started
        without ``enableCancellation``."""
        started = time.perf_counter()
        try:
            self._client.cancel_render_on_lambda(render_id, bucket)
        except Exception as exc:
            mapped = map_error(exc, is_start=False)
            _observe("cancel", started, mapped)
            raise mapped from exc
        _observe("cancel", started, None)

    def info(self) -> str:
        """The Remotion version the function runs (its ``info`` routine, which every version
        answers without a version check: ``packages/serverless/src/info.ts``). Raises
        ``LambdaConfigError`` when the function does not exist or cannot be invoked."""
        started = time.perf_counter()
        try:
            response = aws.lambda_client(self.pool.region, self.pool.endpoint_url).invoke(
                FunctionName=self.pool.function_name,
                Payload=json.dumps({"type": "info", "logLevel": "info"}),
            )
            body = json.loads(response["Payload"].read() or b"{}")
        except Exception as exc:
            mapped = map_error(exc, is_start=False)
            _observe("info", started, mapped)
            raise mapped from exc
        _observe("info", started, None)
        if body.get("type") != "success" or not isinstance(body.get("version"), str):
            raise LambdaConfigError(f"the function's info routine answered {body!r}")
        return str(body["version"])


_instances: PerProcess[dict[str, RenderLambda]] = PerProcess(dict)


def get_lambda(pool: str | None = None) -> RenderLambda:
    """The client of a pool (by name; None: the first, which rows from before pools ran in)."""
    instances = _instances.get()
    found = instances.get(pool or "")
    if found is None:
        found = instances[pool or ""] = RenderLambda(pool_named(pool))
    return found
