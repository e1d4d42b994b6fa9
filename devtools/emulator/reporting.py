"""Pieces of ``getProgress`` that ``launch`` uses for postRenderData too.

``inspectErrors`` (``serverless-client/src/inspect-error.ts``), ``calculateBillingDuration``
(``calculate-billing-duration.ts``), ``calculateChunkTimes`` ('absolute-time',
``calculate-chunk-times.ts``), the frame count (``getFramesToRender``), the expected output
(``expected-out-name.ts``) and the overall progress weights (``get-overall-progress.ts``).
"""

from __future__ import annotations

from collections.abc import Sequence

from devtools.emulator import jsjson, texts
from devtools.emulator.constants import OVERHEAD_TIME_PER_LAMBDA, JSONDict

_EXTENSIONS = {
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


def _explanation(stack: str) -> str | None:
    # serverless-client/src/inspect-error.ts getExplanation
    if "FATAL:zygote_communication_linux.cc" in stack or (
        "error while loading shared libraries: libnss3.so" in stack
    ):
        return "Failed to launch browser. Will be retried - you can probably ignore this error."
    if "TooManyRequestsException" in stack or "ConcurrentInvocationLimitExceeded" in stack:
        return (
            'AWS returned an "TooManyRequestsException" error message which could mean you '
            "reached the concurrency limit of AWS Lambda. You can increase the limit - read "
            f"this troubleshooting page: {texts.DOCS_URL}/docs/lambda/troubleshooting/rate-limit"
        )
    if "ENOSPC" in stack or "no space left on device" in stack:
        return (
            "Your lambda function reached the storage limit. Reduce the amount of space needed "
            "per lambda function or increase the storage limit: "
            f"{texts.DOCS_URL}/docs/lambda/disk-size."
        )
    if "net::ERR_INSUFFICIENT_RESOURCES" in stack:
        return "The lambda ran out of memory. Deploy a new function with more memory."
    if "Target closed." in stack or "Session closed" in stack:
        return (
            "The browser crashed while rendering the video. Deploy a new function with memory "
            "to give the browser more resources."
        )
    return None


def inspect_errors(errors: Sequence[JSONDict]) -> list[JSONDict]:
    """``{...e, explanation, s3Location: ''}`` for every stored error."""
    return [
        {**e, "explanation": _explanation(str(e.get("stack") or "")), "s3Location": ""}
        for e in errors
    ]


def billing_duration(timings: Sequence[JSONDict], invoked: int, elapsed: float) -> float:
    """calculate-billing-duration.ts"""
    done = sum(max(0, t["rendered"] - t["start"]) + OVERHEAD_TIME_PER_LAMBDA for t in timings)
    return done + max(0, invoked - len(timings)) * elapsed


def chunk_times(timings: Sequence[JSONDict]) -> int:
    """calculate-chunk-times.ts, 'absolute-time'."""
    if not timings:
        return 0
    return max(0, max(t["rendered"] for t in timings) - min(t["start"] for t in timings))


def frame_count(metadata: JSONDict) -> int:
    # renderer getFramesToRender(frameRange, everyNthFrame).length
    first, last = metadata["frameRange"]
    return (last - first) // (metadata.get("everyNthFrame") or 1) + 1


def expected_out(metadata: JSONDict, bucket: str) -> tuple[str, str]:
    """serverless-client/src/expected-out-name.ts: (renderBucketName, key)."""
    render_id = metadata["renderId"]
    out_name = metadata.get("outName")
    if isinstance(out_name, dict) and isinstance(out_name.get("key"), str):
        return str(out_name.get("bucketName") or bucket), out_name["key"]
    if isinstance(out_name, str) and out_name:
        return bucket, f"renders/{render_id}/{out_name}"
    if metadata.get("type") == "still":
        return bucket, f"renders/{render_id}/out.{metadata.get('imageFormat')}"
    return bucket, f"renders/{render_id}/out.{_EXTENSIONS.get(str(metadata.get('codec')), 'mp4')}"


def overall(
    encoding: float,
    invoking: float,
    frames: float,
    got_composition: object,
    visited_serve_url: object,
    invoked_lambda: object,
    combining: float,
) -> float:
    # serverless-client/src/get-overall-progress.ts: weights 0.1/0.1/0.1/0.6/0.1
    evaluating = (bool(invoked_lambda) + bool(visited_serve_url) + bool(got_composition)) / 3
    return jsjson.num(
        evaluating * 0.1 + encoding * 0.1 + invoking * 0.1 + frames * 0.6 + combining * 0.1
    )
