"""Remotion Lambda, through Remotion's own Python client, with the behaviour a queue needs.

Three things differ from using ``RemotionClient`` directly (its source: ``remotion_lambda/
remotionclient.py`` in the pinned 4.0.539 package):

* One boto3 Lambda client is built per process and reused. The stock client builds a new one
  on every call (~10 ms of CPU, no connection reuse), which caps polling near 90 calls/s.
* botocore never retries. A retried ``start`` whose first attempt reached Lambda starts a
  second, paid render; the queue decides when to try again, with the claim held.
* Every failure is mapped to one of four exceptions the actors act on: throttled and transient
  (try later), rejected (Remotion refused: the render fails with its message) and config
  (function missing, access denied: also fails, with a code that points at the operator).

The emulator is reached like AWS is: boto3 honours ``AWS_ENDPOINT_URL_LAMBDA``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.exceptions as bexc
from botocore.config import Config
from remotion_lambda import RemotionClient, RenderMediaParams
from remotion_lambda.exception import (
    RemotionException,
    RemotionInvalidArgumentException,
    RemotionRenderingOutputError,
)
from remotion_lambda.version import VERSION as CLIENT_VERSION

from shared.errors import RenderqError
from shared.per_process import PerProcess
from shared.settings import REMOTION_VERSION, Settings, get_settings

if CLIENT_VERSION != REMOTION_VERSION:  # pragma: no cover - guarded by the pyproject pin
    raise ImportError(
        f"remotion-lambda {CLIENT_VERSION} is installed but renderq targets {REMOTION_VERSION}; "
        "the deployed function rejects mismatched versions"
    )


#: How long after its start a render's progress.json may still lack renderMetadata.
METADATA_GRACE_S = 60.0


class LambdaError(RenderqError):
    """Base of every mapped Lambda failure."""


class LambdaThrottled(LambdaError):
    """429 from the Invoke API: the account's concurrency is used up. Try later."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LambdaTransient(LambdaError):
    """Network trouble, 5xx, a crashed function invocation. Try later.

    ``may_have_started`` is True when a ``start`` request may have reached the function
    (the connection broke after sending): retrying could start a duplicate render.
    """

    def __init__(self, message: str, *, may_have_started: bool = False) -> None:
        super().__init__(message)
        self.may_have_started = may_have_started


class LambdaRejected(LambdaError):
    """Remotion handled the request and refused it (bad composition, version mismatch...)."""


class LambdaConfigError(LambdaError):
    """The Invoke API refused the call itself: function missing, access denied, bad payload."""


@dataclass(frozen=True)
class StartedRender:
    render_id: str
    bucket: str


@dataclass(frozen=True)
class RenderProgress:
    overall: float
    done: bool
    output_url: str | None
    output_size_bytes: int | None
    cost_usd: float | None
    fatal_error: str | None


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


class _ReusingRemotionClient(RemotionClient):
    """``RemotionClient`` with one shared (thread-safe) boto3 Lambda client."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lambda_client: Any = None
        self._lambda_client_lock = threading.Lock()

    def _create_lambda_client(self) -> Any:
        if self._lambda_client is None:
            with self._lambda_client_lock:
                if self._lambda_client is None:
                    self._lambda_client = self._create_boto_client("lambda")
        return self._lambda_client

    def _find_json_objects(self, input_string: str) -> list[str]:
        return _find_json_objects(input_string)


_THROTTLE_CODES = {
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
}
_TRANSIENT_CODES = {
    "ServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalServerError",
    "EC2ThrottledException",
    "ResourceNotReadyException",
    "ResourceConflictException",
}


def _map_error(exc: BaseException, *, is_start: bool) -> LambdaError:
    if isinstance(exc, bexc.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"{code}: {error.get('Message') or exc}"
        if code in _THROTTLE_CODES or status == 429:
            retry_after = exc.response.get("retryAfterSeconds")
            return LambdaThrottled(message, float(retry_after) if retry_after else None)
        if code in _TRANSIENT_CODES or status >= 500:
            return LambdaTransient(message)
        return LambdaConfigError(message)
    if isinstance(exc, (bexc.ReadTimeoutError, bexc.ConnectionClosedError)):
        return LambdaTransient(f"{type(exc).__name__}: {exc}", may_have_started=is_start)
    if isinstance(exc, (bexc.ConnectTimeoutError, bexc.EndpointConnectionError)):
        return LambdaTransient(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (bexc.HTTPClientError, bexc.BotoCoreError)):
        if isinstance(exc, bexc.NoCredentialsError):
            return LambdaConfigError(f"no AWS credentials: {exc}")
        return LambdaTransient(f"{type(exc).__name__}: {exc}", may_have_started=is_start)
    if isinstance(exc, RemotionRenderingOutputError):
        text = str(exc)
        if text.startswith("Remotion rendering error:"):
            return LambdaRejected(text.removeprefix("Remotion rendering error:").strip())
        # "Lambda function returned an error" (an unhandled crash) or an unparseable body.
        return LambdaTransient(text)
    if isinstance(exc, RemotionInvalidArgumentException):
        return LambdaRejected(str(exc))
    if isinstance(exc, RemotionException):
        return LambdaTransient(str(exc))
    raise exc


CallObserver = Callable[[str, float, "str | None"], None]
_observer: CallObserver | None = None


def set_call_observer(observer: CallObserver | None) -> None:
    """Receive (operation, seconds, error kind or None) for every Lambda call (metrics)."""
    global _observer
    _observer = observer


def _observe(op: str, started: float, error: BaseException | None) -> None:
    if _observer is not None:
        _observer(op, time.perf_counter() - started, type(error).__name__ if error else None)


class RenderLambda:
    """The only object in renderq that talks to Lambda."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings = settings or get_settings()
        key_id, secret = (
            settings.remotion_aws_access_key_id,
            settings.remotion_aws_secret_access_key,
        )
        if key_id is not None and secret is not None:
            session = boto3.Session(
                aws_access_key_id=key_id.get_secret_value(),
                aws_secret_access_key=secret.get_secret_value(),
                region_name=settings.remotion_aws_region,
            )
        else:
            session = boto3.Session(region_name=settings.remotion_aws_region)
        config = Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=settings.lambda_connect_timeout_s,
            read_timeout=settings.lambda_read_timeout_s,
            max_pool_connections=max(10, settings.poll_concurrency * 2),
            tcp_keepalive=True,
        )
        self._session = session
        self._s3: Any = None
        self._s3_lock = threading.Lock()
        self._client = _ReusingRemotionClient(
            region=settings.remotion_aws_region,
            serve_url=settings.remotion_serve_url,
            function_name=settings.remotion_lambda_function_name,
            session=session,
            config=config,
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
    ) -> StartedRender:
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
            frames_per_lambda=frames_per_lambda or self.settings.frames_per_lambda,
        )
        started = time.perf_counter()
        try:
            response = self._client.render_media_on_lambda(params)
        except Exception as exc:
            mapped = _map_error(exc, is_start=True)
            _observe("start", started, mapped)
            raise mapped from exc
        _observe("start", started, None)
        if response is None:  # pragma: no cover - the client returns None only on empty bodies
            raise LambdaTransient("empty start response", may_have_started=True)
        return StartedRender(render_id=response.render_id, bucket=response.bucket_name)

    def find_render(
        self, out_name: str, *, bucket: str | None = None, since: datetime | None = None
    ) -> StartedRender | None:
        """Find a render by its ``outName`` in Remotion's S3 bucket, without starting one.

        Remotion writes ``renders/<renderId>/progress.json`` (whose ``renderMetadata`` names
        the ``outName``) when a render starts, and ``renders/<renderId>/<outName>`` when it is
        done. Listing the bucket is slow for big buckets, which is acceptable: this runs only
        when a start's outcome is unknown (a worker died mid-start, or the call timed out).
        """
        try:
            s3 = self._s3_client()
            buckets = [bucket] if bucket else self._client._get_remotion_buckets()
            for name in buckets:
                found = self._search_bucket(s3, name, out_name, since)
                if found is not None:
                    return found
        except (bexc.BotoCoreError, bexc.ClientError) as exc:
            raise LambdaTransient(f"could not search S3 for {out_name}: {exc}") from exc
        return None

    def _search_bucket(
        self, s3: Any, bucket: str, out_name: str, since: datetime | None
    ) -> StartedRender | None:
        candidates = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="renders/"):
            for obj in page.get("Contents", []):
                key: str = obj["Key"]
                parts = key.split("/")
                if len(parts) != 3:
                    continue
                if parts[2] == out_name:
                    return StartedRender(render_id=parts[1], bucket=bucket)
                if parts[2] == "progress.json" and (since is None or obj["LastModified"] >= since):
                    candidates.append((obj["LastModified"], key, parts[1]))
        undecided = 0
        now = datetime.now(UTC)
        for modified, key, render_id in sorted(candidates, reverse=True):
            body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            metadata = body.get("renderMetadata")
            if metadata is None:
                # Remotion fills renderMetadata in a few seconds after the start; until then
                # this render could be ours. (If validation failed it stays null: ignore it
                # once it is old enough.)
                undecided += (now - modified).total_seconds() < METADATA_GRACE_S
                continue
            name = metadata.get("outName")
            if isinstance(name, dict):
                name = name.get("key")
            if name == out_name:
                return StartedRender(render_id=render_id, bucket=bucket)
        if undecided:
            raise LambdaTransient(
                f"{undecided} recent render(s) in {bucket} have no metadata yet",
                may_have_started=True,
            )
        return None

    def _s3_client(self) -> Any:
        if self._s3 is None:
            with self._s3_lock:
                if self._s3 is None:
                    self._s3 = self._session.client(
                        "s3",
                        region_name=self.settings.remotion_aws_region,
                        config=Config(
                            s3={"addressing_style": "path"},
                            connect_timeout=self.settings.lambda_connect_timeout_s,
                            read_timeout=self.settings.lambda_read_timeout_s,
                            retries={"mode": "standard"},
                        ),
                    )
        return self._s3

    def progress(self, render_id: str, bucket: str) -> RenderProgress:
        started = time.perf_counter()
        try:
            progress = self._client.get_render_progress(render_id, bucket)
        except Exception as exc:
            mapped = _map_error(exc, is_start=False)
            _observe("progress", started, mapped)
            raise mapped from exc
        _observe("progress", started, None)
        if progress is None:  # pragma: no cover
            raise LambdaTransient("empty progress response")
        data = progress.__dict__
        costs = data.get("costs") or {}
        cost = costs.get("accruedSoFar") if isinstance(costs, dict) else None
        fatal = None
        if data.get("fatalErrorEncountered"):
            errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
            fatal_errors = [e for e in errors if e.get("isFatal") and not e.get("willRetry")]
            first = (fatal_errors or errors or [{}])[0]
            name, message = first.get("name"), first.get("message")
            fatal = f"{name}: {message}" if name and message else str(message or "fatal error")
        return RenderProgress(
            overall=float(data.get("overallProgress") or 0.0),
            done=bool(data.get("done")),
            output_url=data.get("outputFile"),
            output_size_bytes=data.get("outputSizeInBytes"),
            cost_usd=float(cost) if cost is not None else None,
            fatal_error=fatal,
        )


_instance: PerProcess[RenderLambda] = PerProcess(RenderLambda)


def get_lambda() -> RenderLambda:
    return _instance.get()
