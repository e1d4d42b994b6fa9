"""Render planning: from a start payload to a render record.

The payload checks (frame range, dimensions, ``framesPerLambda`` / ``concurrency``, which
mirror Remotion's validation and its error messages), Remotion's default frames per
function, the input props, the output's name, size and most expensive chunks, and the
:class:`_Planning` mixin of :class:`~devtools.emulator.core.LambdaEmulator` that turns a
validated payload into a :class:`~devtools.emulator.renders._Plan` and then a
:class:`~devtools.emulator.renders._Render` (timing, stall and failure points, metadata).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from devtools.emulator.constants import (
    DEFAULT_DURATION_IN_FRAMES,
    DEFAULT_FATAL_MESSAGE,
    DEFAULT_FPS,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    MAX_FUNCTIONS_PER_RENDER,
    MEMORY_SIZE_MB,
    MINIMUM_FRAMES_PER_FUNCTION,
    NEVER_FINISH_STALL_AT,
    JSONDict,
)
from devtools.emulator.faults import _Directive, _Faults, _parse_directive, _Rule
from devtools.emulator.renders import _Plan, _Render
from devtools.emulator.responses import _HandledError
from devtools.emulator.state import _EmulatorState

_CODEC_EXTENSIONS: Final[Mapping[str, str]] = {
    "h264": "mp4",
    "h265": "mp4",
    "vp8": "webm",
    "vp9": "webm",
    "prores": "mov",
    "gif": "gif",
    "mp3": "mp3",
    "aac": "aac",
    "wav": "wav",
    "h264-mkv": "mkv",
    "h264-ts": "ts",
}


def _best_frames_per_lambda(frame_count: int) -> int:
    """Remotion's default: 75..150 functions across 0..18000 frames, >= 20 frames each."""
    concurrency = 75 + 75 * min(frame_count, 18000) / 18000
    frames_per_function = max(frame_count / concurrency, 20)
    functions_needed = math.ceil(frame_count / frames_per_function)
    return math.ceil(frame_count / functions_needed)


def _resolve_frames_per_lambda(payload: Mapping[str, Any], frame_count: int) -> int:
    # Mirrors serverless-client/src/validate-frames-per-function.ts, messages included.
    frames_per_lambda = payload.get("framesPerLambda")
    concurrency = payload.get("concurrency")
    minimum = min(MINIMUM_FRAMES_PER_FUNCTION, frame_count)
    if concurrency is not None and frames_per_lambda is not None:
        raise _HandledError(
            "Both 'framesPerLambda' and 'concurrency' were set. Please use only one of them."
        )
    if concurrency is not None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency <= 0:
            raise _HandledError(
                f"'concurrency' needs to be a positive integer, passed {concurrency}"
            )
        if concurrency > MAX_FUNCTIONS_PER_RENDER:
            raise _HandledError(
                f"'concurrency' cannot exceed {MAX_FUNCTIONS_PER_RENDER}, passed {concurrency}"
            )
        return max(math.ceil(frame_count / concurrency), minimum)
    if frames_per_lambda is None:
        return max(_best_frames_per_lambda(frame_count), minimum)
    if isinstance(frames_per_lambda, bool) or not isinstance(frames_per_lambda, int):
        raise _HandledError(
            f"'framesPerLambda' needs to be an integer, passed {json.dumps(frames_per_lambda)}"
        )
    if frames_per_lambda < minimum:
        raise _HandledError(
            f"The framesPerLambda needs to be at least {minimum}, but is {frames_per_lambda}"
        )
    return frames_per_lambda


def _positive_int_or(payload: Mapping[str, Any], key: str, default: int) -> int:
    value = payload.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _HandledError(f"'{key}' must be a positive integer, but got {json.dumps(value)}")
    return value


def _frame_range(payload: Mapping[str, Any], duration: int) -> tuple[int, int]:
    raw = payload.get("frameRange")
    if raw is None:
        return 0, duration - 1
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < duration:
        return raw, raw
    if (
        isinstance(raw, list)
        and len(raw) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
        and 0 <= raw[0] <= raw[1] < duration
    ):
        return raw[0], raw[1]
    raise _HandledError(
        f"frameRange {json.dumps(raw)} is not valid for a composition of {duration} frames"
    )


def _decode_input_props(serialized: object) -> object:
    """Return the render's input props, or None when they live in S3 or do not parse."""
    if not isinstance(serialized, dict) or serialized.get("type") != "payload":
        return None
    payload = serialized.get("payload")
    if not isinstance(payload, str):
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return None


def _out_name_label(out_name: object, extension: str) -> str:
    if isinstance(out_name, str) and out_name:
        return out_name
    if isinstance(out_name, dict) and isinstance(out_name.get("key"), str):
        return str(out_name["key"])
    return f"out.{extension}"


def _site_id(serve_url: str) -> str | None:
    marker = "/sites/"
    if marker not in serve_url:
        return None
    return serve_url.split(marker, 1)[1].split("/", 1)[0] or None


def _output_size(plan: _Plan) -> int:
    # Roughly 6 Mbit/s for 1080p30: plausible, and the same for the same render every time.
    return plan.width * plan.height * plan.frames // 80 + 4096


def _most_expensive_frame_ranges(plan: _Plan, run_s: float) -> list[JSONDict]:
    """Top-5 chunks by (made-up but deterministic) render time, as the done status lists."""
    base_ms = plan.frames_per_lambda / plan.frames * run_s * 1000
    costs = sorted(
        ((int(base_ms * (1 + (chunk * 37 % 11) / 20)), chunk) for chunk in range(plan.chunks)),
        key=lambda item: (-item[0], item[1]),
    )
    ranges = []
    for cost_ms, chunk in costs[:5]:
        first = plan.frame_range[0] + chunk * plan.frames_per_lambda
        last = min(first + plan.frames_per_lambda - 1, plan.frame_range[1])
        ranges.append({"chunk": chunk, "timeInMilliseconds": cost_ms, "frameRange": [first, last]})
    return ranges


class _Planning(_EmulatorState):
    """LambdaEmulator's render planning, for the start routine (see the module docstring)."""

    # -- render planning ---------------------------------------------------------------

    def _plan(self, payload: Mapping[str, Any], rules: Sequence[_Rule]) -> _Plan:
        composition = payload.get("composition")
        if not isinstance(composition, str) or not composition:
            raise _HandledError(
                f"'composition' must be a non-empty string, but got {json.dumps(composition)}"
            )
        serve_url = payload.get("serveUrl")
        if not isinstance(serve_url, str) or not serve_url:
            raise _HandledError(
                f"'serveUrl' must be a non-empty string, but got {json.dumps(serve_url)}"
            )
        bucket = payload.get("bucketName") or self._default_bucket
        if not isinstance(bucket, str):
            raise _HandledError(f"'bucketName' must be a string, but got {json.dumps(bucket)}")
        duration = _positive_int_or(payload, "forceDurationInFrames", DEFAULT_DURATION_IN_FRAMES)
        first, last = _frame_range(payload, duration)
        every_nth = _positive_int_or(payload, "everyNthFrame", 1)
        frames = math.ceil((last - first + 1) / every_nth)
        frames_per_lambda = _resolve_frames_per_lambda(payload, frames)
        chunks = math.ceil(frames / frames_per_lambda)
        if chunks > MAX_FUNCTIONS_PER_RENDER:
            raise _HandledError(
                f"Too many functions: This render would cause {chunks} functions to spawn. "
                f"We limit this amount to {MAX_FUNCTIONS_PER_RENDER} functions as more would "
                f"result in diminishing returns. Values set: frameCount = {frames}, "
                f"framesPerLambda={frames_per_lambda}. See "
                "https://www.remotion.dev/docs/lambda/concurrency#too-many-functions for help."
            )
        directive = _Directive()
        for rule in rules:
            if rule.composition == composition:
                directive = directive.overlay(rule.directive)
        props = _decode_input_props(payload.get("inputProps"))
        if isinstance(props, dict) and "__emulator__" in props:
            raw = props["__emulator__"]
            try:
                if not isinstance(raw, dict):
                    raise ValueError("__emulator__ must be an object")
                directive = directive.overlay(_parse_directive(raw, "__emulator__"))
            except ValueError as exc:
                raise _HandledError(f"Invalid emulator directive in inputProps: {exc}") from exc
        codec = payload.get("codec")
        return _Plan(
            composition=composition,
            codec=codec if isinstance(codec, str) else "h264",
            frames=frames,
            fps=_positive_int_or(payload, "forceFps", DEFAULT_FPS),
            width=_positive_int_or(payload, "forceWidth", DEFAULT_WIDTH),
            height=_positive_int_or(payload, "forceHeight", DEFAULT_HEIGHT),
            frame_range=(first, last),
            frames_per_lambda=frames_per_lambda,
            chunks=chunks,
            out_name=payload.get("outName"),
            bucket=bucket,
            directive=directive,
        )

    def _new_render_id(self, payload: Mapping[str, Any]) -> str:
        # Remotion: [deleteAfter, randomHash()].filter(truthy).join('-').
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        delete_after = payload.get("deleteAfter")
        while True:
            random_hash = "".join(secrets.choice(alphabet) for _ in range(10))
            render_id = f"{delete_after}-{random_hash}" if delete_after else random_hash
            if render_id not in self._renders:
                return render_id

    def _materialize(
        self,
        function_name: str,
        payload: Mapping[str, Any],
        plan: _Plan,
        speed: float,
        settings: _Faults,
        now_mono: float,
        render_id: str,
    ) -> _Render:
        run_s = plan.frames / speed
        timeout_s = settings.function_timeout_s
        directive = plan.directive
        # A render whose orchestrator is killed by the function timeout never completes,
        # exactly like the real thing; never_finish forces that regardless of speed.
        fatal_fraction = (
            directive.fatal_at
            if directive.fatal_at is not None and directive.fatal_at * run_s <= timeout_s
            else None
        )
        stall_fraction: float | None = None
        if directive.never_finish:
            stall_fraction = min(NEVER_FINISH_STALL_AT, timeout_s / run_s)
        elif run_s > timeout_s:
            stall_fraction = timeout_s / run_s
        if fatal_fraction is not None:
            release_after_s = fatal_fraction * run_s
        elif stall_fraction is None:
            release_after_s = run_s
        else:
            release_after_s = timeout_s

        extension = _CODEC_EXTENSIONS.get(plan.codec, "mp4")
        out_name = plan.out_name
        out_bucket = plan.bucket
        if isinstance(out_name, dict) and isinstance(out_name.get("key"), str):
            out_key = str(out_name["key"])
            if isinstance(out_name.get("bucketName"), str):
                out_bucket = str(out_name["bucketName"])
        else:
            out_key = f"renders/{render_id}/{_out_name_label(out_name, extension)}"
        started_epoch_ms = int(time.time() * 1000)
        serve_url = str(payload.get("serveUrl"))
        metadata: JSONDict = {
            "type": "video",
            "siteId": _site_id(serve_url),
            "startedDate": started_epoch_ms,
            "totalChunks": plan.chunks,
            "estimatedTotalLambdaInvokations": plan.functions,
            "estimatedRenderLambdaInvokations": plan.chunks,
            "compositionId": plan.composition,
            "codec": plan.codec,
            "audioCodec": payload.get("audioCodec"),
            "imageFormat": payload.get("imageFormat", "jpeg"),
            "inputProps": payload.get("inputProps"),
            "framesPerLambda": plan.frames_per_lambda,
            "memorySizeInMb": MEMORY_SIZE_MB,
            "functionName": function_name,
            "rendererFunctionName": payload.get("rendererFunctionName") or function_name,
            "lambdaVersion": self.remotion_version,
            "region": self.region,
            "renderId": render_id,
            "outName": out_name,
            "privacy": payload.get("privacy", "public"),
            "deleteAfter": payload.get("deleteAfter"),
            "numberOfGifLoops": payload.get("numberOfGifLoops"),
            "audioBitrate": payload.get("audioBitrate"),
            "downloadBehavior": payload.get("downloadBehavior"),
            "metadata": payload.get("metadata"),
            "dimensions": {"width": plan.width, "height": plan.height},
            "scale": payload.get("scale", 1),
            "muted": bool(payload.get("muted", False)),
            "frameRange": list(plan.frame_range),
            "everyNthFrame": payload.get("everyNthFrame") or 1,
        }
        return _Render(
            render_id=render_id,
            bucket=plan.bucket,
            plan=plan,
            out_name_label=_out_name_label(out_name, extension),
            out_key=out_key,
            out_bucket=out_bucket,
            output_url=f"https://s3.{self.region}.amazonaws.com/{out_bucket}/{out_key}",
            output_size=_output_size(plan),
            started_epoch_ms=started_epoch_ms,
            started_mono=now_mono,
            run_s=run_s,
            timeout_s=timeout_s,
            grace_s=settings.timeout_grace_s,
            fatal_fraction=fatal_fraction,
            fatal_message=directive.message or DEFAULT_FATAL_MESSAGE,
            stall_fraction=stall_fraction,
            release_after_s=release_after_s,
            metadata=metadata,
            expensive_ranges=_most_expensive_frame_ranges(plan, run_s),
            metadata_delay_s=settings.progress_metadata_delay_ms / 1000,
            cancellation_enabled=payload.get("enableCancellation") is True,
        )
