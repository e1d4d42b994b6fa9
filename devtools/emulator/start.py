"""The ``start`` routine, and the helpers the other synchronous routines share.

Follows ``serverless/src/handlers/start.ts`` and ``inner-routine.ts``: the render id comes
first (``[deleteAfter, randomHash()].join('-')``, before any validation), then the version
check (``handlers/check-version-mismatch.ts``), the bucket (``params.bucketName`` or
get-or-create as ``serverless-client/src/get-or-create-bucket.ts`` with
``lambda-client/src/get-buckets.ts`` do it: list ``remotionlambda-*`` buckets, read the
region from the name, several -> an error, none -> create ``remotionlambda-<region>-<10
random>``), the serve URL (``lambda-client/src/convert-to-serve-url.ts``), ``deleteAfter``
(``aws-provider.ts`` validateDeleteAfter), the initial progress.json and the Event
invocation of ``launch``. Every error is *handled*: ``{type: 'error', message, stack}``.
The composition is not looked at; that is launch's job. The ``crash_start`` /
``reject_start`` directives and the counted ``crash_starts`` are fault injections.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from devtools.emulator import aws, texts
from devtools.emulator.aws import FunctionConfig
from devtools.emulator.constants import (
    BUCKET_PREFIX,
    RANDOM_HASH_ALPHABET,
    REFERENCE_SPEED_FPS,
    JSONDict,
)
from devtools.emulator.faults import Directive, parse_directive
from devtools.emulator.progress_file import OverallProgress
from devtools.emulator.render import Render, Timing
from devtools.emulator.responses import InvokeResult, handled_error, success, unhandled_error
from devtools.emulator.s3 import ProgressObject
from devtools.emulator.texts import RemotionError
from devtools.emulator.uploads import cancel_key, expected_output, progress_key
from devtools.emulator.webhooks import WebhooksMixin

_BUCKET_NAME = re.compile(
    r"^remotionlambda-(.*)-([a-z0-9A-Z]+)$"
)  # lambda-client/src/get-buckets.ts


def random_hash() -> str:
    """lambda-client/src/random-hash.ts: 10 characters of [a-z0-9]."""
    return "".join(secrets.choice(RANDOM_HASH_ALPHABET) for _ in range(10))


def out_name_label(payload: Mapping[str, Any]) -> str:
    _, key = expected_output("x", "x", dict(payload))
    out_name = payload.get("outName")
    if isinstance(out_name, dict) and isinstance(out_name.get("key"), str):
        return str(out_name["key"])
    return key.split("/", 2)[2]


class StartMixin(WebhooksMixin):
    """LambdaEmulator's start routine and shared helpers (see the module docstring)."""

    def _check_version(self, fn: FunctionConfig, payload: JSONDict, api: str) -> None:
        if payload.get("version") != self.remotion_version:
            raise RemotionError(
                texts.version_mismatch(api, fn.name, self.remotion_version, payload)
            )

    def _scale(self, speed: float) -> float:
        return REFERENCE_SPEED_FPS / speed

    def _get_or_create_bucket(self, now: float) -> str:
        """serverless-client/src/get-or-create-bucket.ts with lambda-client/src/get-buckets.ts."""
        self._counters.internal_s3_calls["ListBuckets"] += 1
        mine = []
        for name in sorted(self._buckets):
            if not name.startswith(BUCKET_PREFIX):
                continue
            match = _BUCKET_NAME.match(name)
            region = None
            if match is not None:
                region = next(
                    (r for r in aws.AWS_REGIONS if r.replace("-", "") == match.group(1)), None
                )
            if region is None:  # only then GetBucketLocation (every bucket here is in our region)
                self._counters.internal_s3_calls["GetBucketLocation"] += 1
                region = self.region
            if region == self.region:
                mine.append(name)
        if len(mine) > 1:
            raise RemotionError(texts.multiple_buckets(mine, self.region))
        if mine:
            return mine[0]
        name = (
            f"{BUCKET_PREFIX}{self.region.replace('-', '')}-{random_hash()}"  # make-bucket-name.ts
        )
        self._counters.internal_s3_calls["CreateBucket"] += 1
        self._create_bucket(name, now)
        return name

    def _serve_url(self, url: object, bucket: str) -> str:
        # lambda-client/src/convert-to-serve-url.ts
        text = str(url)
        if text.startswith("src/"):
            raise RemotionError(texts.local_serve_url(text))
        if text.startswith(("http://", "https://")):
            return text
        return f"https://{bucket}.s3.{self.region}.{aws.dns_suffix(self.region)}/sites/{text}/index.html"

    def _directive_for(self, payload: Mapping[str, Any]) -> Directive:
        """Rules for the composition, then ``__emulator__`` in the input props (fault injection)."""
        directive = Directive()
        for rule in self._faults.rules:
            if rule.composition == payload.get("composition"):
                directive = directive.overlay(rule.directive)
        serialized = payload.get("inputProps")
        raw: Any = None
        if isinstance(serialized, dict) and serialized.get("type") == "payload":
            raw = serialized.get("payload")
        elif isinstance(serialized, dict) and serialized.get("type") == "bucket-url":
            _, data = self._get_object_internal(
                str(serialized.get("bucketName")), f"input-props/{serialized.get('hash')}.json"
            )
            raw = None if data is None else data.decode("utf-8", "replace")
        try:
            props = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            props = None
        if isinstance(props, dict) and "__emulator__" in props:
            value = props["__emulator__"]
            try:
                if not isinstance(value, dict):
                    raise ValueError("__emulator__ must be an object")
                directive = directive.overlay(parse_directive(value, "__emulator__"))
            except ValueError as exc:
                raise RemotionError(f"Invalid emulator directive in inputProps: {exc}") from exc
        return directive

    def _timing(self, directive: Directive) -> Timing:
        faults = self._faults
        # A render's own speed (a directive) changes how fast it renders frames; overheads
        # follow the emulator's speed.
        speed = directive.speed or faults.speed
        scale = self._scale(faults.speed) / 1000
        return Timing(
            cold_start=faults.cold_start_ms * scale,
            browser=faults.browser_ms * scale,
            serve_url=faults.serve_url_ms * scale,
            composition=faults.composition_ms * scale,
            renderer_start=faults.renderer_start_ms * scale,
            combine=faults.combine_ms * scale,
            finish=faults.finish_ms * scale,
            upload_interval=faults.upload_interval_ms * scale,
            metadata_delay=faults.progress_metadata_delay_ms / 1000,
            speed=speed,
        )

    # -- start -------------------------------------------------------------------------------

    def _start(self, fn: FunctionConfig, payload: JSONDict) -> InvokeResult:
        with self._lock:
            delay_ms = self._faults.start_delay_ms
        if delay_ms:
            time.sleep(delay_ms / 1000)
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            faults = self._faults
            if faults.crash_starts:  # fault injection: the invocation crashes
                faults.crash_starts -= 1
                self._counters.crashes_total += 1
                return unhandled_error(
                    RemotionError("Emulated unhandled crash in start (crash_starts)")
                )
            try:
                directive = self._directive_for(payload)
            except RemotionError as exc:
                return self._handled(exc)
            if directive.crash_start:
                self._counters.crashes_total += 1
                return unhandled_error(RemotionError(directive.crash_start))
            if directive.reject_start:  # fault injection only: Remotion never rejects here
                return self._handled(RemotionError(directive.reject_start))
            render_id = "-".join(
                str(part) for part in (payload.get("deleteAfter"), random_hash()) if part
            )
            try:
                self._check_version(fn, payload, "renderMediaOnLambda()")
                bucket = payload.get("bucketName") or self._get_or_create_bucket(now)
                serve_url = self._serve_url(payload.get("serveUrl"), str(bucket))
                problem = texts.delete_after_error(payload.get("deleteAfter"))
                if problem is not None:
                    raise problem
            except RemotionError as exc:
                return self._handled(exc)
            render = self._new_render(
                now, fn, payload, str(bucket), serve_url, render_id, directive
            )
            written = self._write_initial_progress(now, render)
            self._push(now, self._ev_launch_invoke, render, auto=render.autonomous)
            self._advance(now)
        if not written:  # write-file.ts writeFileWithRetries: 2 retries, 2000 ms then 4000 ms
            time.sleep(6.0 * self._scale(self._faults.speed))
            return self._handled(
                RemotionError("The specified bucket does not exist", "NoSuchBucket")
            )
        return success({"type": "success", "bucketName": render.bucket, "renderId": render_id})

    def _new_render(
        self,
        now: float,
        fn: FunctionConfig,
        payload: JSONDict,
        bucket: str,
        serve_url: str,
        render_id: str,
        directive: Directive,
    ) -> Render:
        launch_payload = {**payload, "serveUrl": serve_url, "bucketName": bucket}
        timing = self._timing(directive)
        renderer_name = payload.get("rendererFunctionName") or fn.name
        webhook = payload.get("webhook") if isinstance(payload.get("webhook"), dict) else None
        render = Render(
            render_id=render_id,
            bucket=bucket,
            payload=launch_payload,
            function=fn,
            renderer_function=self._function(str(renderer_name)),
            directive=directive,
            timing=timing,
            started_mono=now,
            out_name_label=out_name_label(payload),
            composition_id=str(payload.get("composition")),
            webhook=webhook,
            cancellation_enabled=payload.get("enableCancellation") is True,
            autonomous=webhook is not None,
        )
        self._renders[render_id] = render
        counters = self._counters
        counters.starts_total += 1
        label = render.out_name_label
        counters.starts_by_out_name[label] = counters.starts_by_out_name.get(label, 0) + 1
        counters.start_times_by_out_name.setdefault(label, []).append(self._ms(now) / 1000)
        return render

    def _write_initial_progress(self, now: float, render: Render) -> bool:
        """makeInitialOverallRenderProgress(timeoutInMilliseconds + Date.now(), cancellation)."""
        initial = OverallProgress(
            self._ms(now) + render.function.timeout_ms, self._ms(now), render.cancellation_enabled
        )
        obj = ProgressObject(initial.snapshot(self._ms(now)))
        return self._put_object(
            now, render.bucket, progress_key(render.render_id), obj, "PutObject"
        )

    def _handled(self, error: RemotionError) -> InvokeResult:
        self._counters.handled_errors_total += 1
        return handled_error(error)

    def _is_cancel_key(self, key: str) -> str | None:
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "renders" and cancel_key(parts[1]) == key:
            return parts[1]
        return None
