"""``getProgress``: the status routine's body, built from progress.json as Remotion does.

A line-by-line model of ``serverless-client/src/progress.ts`` (at a2e9d3d4, between 4.0.527
and 4.0.535): three shapes (done from ``postRenderData``; early while ``renderMetadata`` is
null; in progress, including the early "done" answer from the output probe), their key
orders, ``getOverallProgress`` weights, ``estimatePriceFromMetadata`` costs (memory from the
renderer function's name, disk priced at 10240 MB, frozen at the first fatal error) and the
synthetic ``TimeoutError`` (``make-timeout-error.ts``, ``make-timeout-message.ts``) with its
CloudWatch URLs. The parts postRenderData shares are in :mod:`devtools.emulator.reporting`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from devtools.emulator import aws, jsjson, texts
from devtools.emulator.constants import JSONDict
from devtools.emulator.reporting import (
    billing_duration,
    chunk_times,
    expected_out,
    inspect_errors,
)
from devtools.emulator.reporting import (
    frame_count as count_frames,
)
from devtools.emulator.reporting import (
    overall as overall_progress,
)
from devtools.emulator.texts import RemotionError


@dataclass(frozen=True, slots=True)
class StatusContext:
    """What the status invocation knows about itself (progress.ts's other arguments)."""

    bucket: str
    render_id: str
    region: str
    memory_mb: int
    timeout_ms: int
    """The status invocation's own getRemainingTimeInMillis() when it started."""
    function_name: str
    now_ms: int
    grace_ms: int
    find_output: Callable[[str, str], int | None]


def _timeout_error(ctx: StatusContext, metadata: JSONDict, missing: list[int]) -> JSONDict:
    # make-timeout-message.ts + make-timeout-error.ts
    fn, region, rid = ctx.function_name, ctx.region, ctx.render_id
    if not missing:
        chunk_text = (
            "All chunks have been successfully rendered, but the main function has timed out."
        )
    else:
        lines = [
            f"The following chunks are missing (showing {min(5, len(missing))} out of "
            f"{len(missing)}):"
        ]
        fpl, (first, last) = metadata["framesPerLambda"], metadata["frameRange"]
        for ch in missing[:5]:
            start = ch * fpl + first
            end = last if ch == metadata["totalChunks"] - 1 else (ch + 1) * fpl - 1 + first
            lines.append(
                f"Chunk {ch} (Frames {start} - {end})\n▸ Logs for chunk {ch}: "
                + aws.cloudwatch_renderer_url(region, fn, rid, ch)
            )
        chunk_text = "\n".join(lines)
    message = "\n".join(
        [
            f"The main function timed out after {ctx.timeout_ms}ms.",
            chunk_text,
            "",
            "Consider increasing the timeout of your function.",
            '▸ You can use the "--timeout" parameter when deploying a function via CLI, or the '
            '"timeoutInSeconds" parameter when using the deployFunction() API.',
            f"{texts.DOCS_URL}/docs/lambda/cli/functions/deploy",
            "",
            "▸ Visit the logs for the main function:",
            aws.cloudwatch_method_url(region, fn, "launch", rid),
            "▸ Visit the logs for the renderer functions:",
            aws.cloudwatch_renderer_url(region, fn, rid, None),
            "",
            "▸ Get help on debugging this error:",
            f"{texts.DOCS_URL}/docs/lambda/troubleshooting/debug",
        ]
    )
    return {
        "attempt": 1,
        "chunk": None,
        "explanation": None,
        "frame": None,
        "isFatal": True,
        "s3Location": "",
        "stack": texts.stack_of("Error", message, "makeTimeoutError (/var/task/index.js)"),
        "tmpDir": None,
        "totalAttempts": 1,
        "type": "stitcher",
        "willRetry": False,
        "message": message,
        "name": "TimeoutError",
    }


def _fatal(errors: Sequence[JSONDict]) -> bool:
    return any(e.get("isFatal") and not e.get("willRetry") for e in errors)


def get_progress(doc: JSONDict, ctx: StatusContext) -> JSONDict:
    """progress.ts getProgress; raises RemotionError where it throws."""
    prd, metadata = doc.get("postRenderData"), doc.get("renderMetadata")
    if prd:
        if not metadata:
            raise RemotionError(texts.NO_METADATA_BUT_FINISHED)
        if metadata.get("type") == "still":
            raise RemotionError(texts.STILL_PROGRESS)
        total = count_frames(metadata)
        out_bucket, out_key = expected_out(metadata, ctx.bucket)
        cost = prd["cost"]
        return {
            "framesRendered": total,
            "bucket": ctx.bucket,
            "renderSize": prd["renderSize"],
            "chunks": metadata["totalChunks"],
            "cleanup": {
                "doneIn": prd["timeToCleanUp"],
                "filesDeleted": prd["filesCleanedUp"],
                "minFilesToDelete": prd["filesCleanedUp"],
            },
            "costs": {
                "accruedSoFar": cost["estimatedCost"],
                "displayCost": cost["estimatedDisplayCost"],
                "currency": cost["currency"],
                "disclaimer": cost["disclaimer"],
            },
            "currentTime": ctx.now_ms,
            "done": True,
            "encodingStatus": {
                "framesEncoded": total,
                "combinedFrames": total,
                "timeToCombine": prd["timeToCombine"],
            },
            "errors": prd["errors"],
            "fatalErrorEncountered": False,
            "lambdasInvoked": metadata["totalChunks"],
            "outputFile": prd["outputFile"],
            "separateAudio": prd.get("separateAudio"),
            "renderId": ctx.render_id,
            "timeToFinish": prd["timeToFinish"],
            "timeToFinishChunks": prd["timeToRenderChunks"],
            "timeToRenderFrames": prd["timeToRenderFrames"],
            "overallProgress": 1,
            "retriesInfo": prd["retriesInfo"],
            "outKey": out_key,
            "outBucket": out_bucket,
            "mostExpensiveFrameRanges": prd.get("mostExpensiveFrameRanges"),
            "timeToEncode": prd["timeToEncode"],
            "outputSizeInBytes": prd["outputSize"],
            "type": "success",
            "estimatedBillingDurationInMilliseconds": prd["estimatedBillingDurationInMilliseconds"],
            "timeToCombine": prd["timeToCombine"],
            "combinedFrames": total,
            "renderMetadata": metadata,
            "timeoutTimestamp": doc["timeoutTimestamp"],
            "compositionValidated": doc["compositionValidated"],
            "functionLaunched": doc["functionLaunched"],
            "serveUrlOpened": doc["serveUrlOpened"],
            "artifacts": doc["receivedArtifact"],
        }
    explained = inspect_errors(doc.get("errors") or [])
    chunks: list[int] = doc.get("chunks") or []
    lambdas = doc.get("lambdasInvoked") or 0
    cleanup = {"doneIn": None, "minFilesToDelete": 0, "filesDeleted": 0}
    if metadata is None:
        return _in_progress_body(
            doc, ctx, None, explained, lambdas, cleanup, aws.format_costs_info(0, ctx.region), None
        )
    # estimate-price-from-bucket.ts estimatePriceFromMetadata
    now = doc.get("fatalErrorTimestamp") or ctx.now_ms
    elapsed = max(0, now - metadata["startedDate"])
    timings = doc.get("timings") or []
    billing = billing_duration(timings, lambdas, elapsed)
    parsed = aws.parse_function_name(str(metadata.get("rendererFunctionName")))
    memory = parsed[1] if parsed is not None else ctx.memory_mb
    accrued = jsjson.to_precision(aws.estimate_price(ctx.region, billing, memory, lambdas), 5)
    if metadata.get("type") == "still":
        raise RemotionError(texts.STILL_PROGRESS)
    frame_count = count_frames(metadata)
    done_chunks = set(chunks)
    missing = [i for i in range(metadata["totalChunks"]) if i not in done_chunks]
    all_chunks = not missing
    started = metadata["startedDate"]
    beyond_missing = ctx.now_ms > started + ctx.timeout_ms + ctx.grace_ms and bool(missing)
    beyond_stitch = ctx.now_ms > started + ctx.timeout_ms * 2 + ctx.grace_ms
    costs = aws.format_costs_info(accrued, ctx.region)
    if (
        all_chunks
        and not _fatal(explained)
        and (
            beyond_stitch
            or (
                (doc.get("combinedFrames") or 0) >= frame_count
                and doc.get("timeToCombine") is not None
            )
        )
    ):
        out_bucket, out_key = expected_out(metadata, ctx.bucket)
        size = ctx.find_output(out_bucket, out_key)
        if size is not None:  # the output probe: done before postRenderData is written
            return _probe_done(doc, ctx, metadata, explained, frame_count, costs, billing, size)
    all_errors = [_timeout_error(ctx, metadata, missing)] if beyond_missing or beyond_stitch else []
    all_errors += explained
    return _in_progress_body(
        doc,
        ctx,
        metadata,
        all_errors,
        lambdas,
        cleanup,
        costs,
        billing,
        frame_count=frame_count,
        chunk_time=chunk_times(timings) if all_chunks else None,
    )


def _probe_done(
    doc: JSONDict,
    ctx: StatusContext,
    metadata: JSONDict,
    explained: list[JSONDict],
    frame_count: int,
    costs: JSONDict,
    billing: float,
    size: int,
) -> JSONDict:
    out_bucket, out_key = expected_out(metadata, ctx.bucket)
    return {
        "framesRendered": frame_count,
        "bucket": ctx.bucket,
        "renderSize": size,
        "chunks": metadata["totalChunks"],
        "cleanup": {"doneIn": None, "filesDeleted": 0, "minFilesToDelete": 0},
        "costs": costs,
        "currentTime": ctx.now_ms,
        "done": True,
        "encodingStatus": {
            "framesEncoded": frame_count,
            "combinedFrames": frame_count,
            "timeToCombine": doc.get("timeToCombine"),
        },
        "errors": explained,
        "fatalErrorEncountered": False,
        "lambdasInvoked": metadata["totalChunks"],
        "outputFile": aws.output_url(ctx.region, out_bucket, out_key),
        "separateAudio": doc.get("separateAudio"),
        "renderId": ctx.render_id,
        "timeToFinish": ctx.now_ms - metadata["startedDate"],
        "timeToFinishChunks": chunk_times(doc.get("timings") or []),
        "timeToRenderFrames": doc.get("timeToRenderFrames"),
        "overallProgress": 1,
        "retriesInfo": doc.get("retries") or [],
        "outKey": out_key,
        "outBucket": out_bucket,
        "mostExpensiveFrameRanges": None,
        "timeToEncode": doc.get("timeToEncode"),
        "outputSizeInBytes": size,
        "type": "success",
        "estimatedBillingDurationInMilliseconds": jsjson.num(billing),
        "timeToCombine": doc.get("timeToCombine"),
        "combinedFrames": frame_count,
        "renderMetadata": metadata,
        "timeoutTimestamp": doc["timeoutTimestamp"],
        "compositionValidated": doc["compositionValidated"],
        "functionLaunched": doc["functionLaunched"],
        "serveUrlOpened": doc["serveUrlOpened"],
        "artifacts": doc["receivedArtifact"],
    }


def _in_progress_body(
    doc: JSONDict,
    ctx: StatusContext,
    metadata: JSONDict | None,
    errors: list[JSONDict],
    lambdas: int,
    cleanup: JSONDict,
    costs: JSONDict,
    billing: float | None,
    frame_count: int = 0,
    chunk_time: int | None = None,
) -> JSONDict:
    """The early shape (renderMetadata null) and the in-progress shape share this order."""
    frames = doc.get("framesRendered") or 0
    encoded = doc.get("framesEncoded")
    combined = doc.get("combinedFrames") or 0
    if metadata is None:
        overall = overall_progress(
            0, 0, 0, doc.get("compositionValidated"), doc.get("serveUrlOpened"), lambdas, 0
        )
    else:
        estimated = metadata["estimatedRenderLambdaInvokations"]
        invoking = (1 if lambdas > 0 else 0) if estimated == 0 else lambdas / estimated
        overall = overall_progress(
            (encoded or 0) / frame_count if frame_count else 0,
            invoking,
            frames / (frame_count or 1),
            doc.get("compositionValidated"),
            doc.get("serveUrlOpened"),
            lambdas,
            combined / (frame_count or 1),
        )
    body: dict[str, Any] = {
        "framesRendered": frames,
        "chunks": len(doc.get("chunks") or []),
        "done": False,
        "encodingStatus": {
            "framesEncoded": encoded,
            "combinedFrames": doc.get("combinedFrames"),
            "timeToCombine": doc.get("timeToCombine"),
        },
        "timeToRenderFrames": doc.get("timeToRenderFrames"),
        "costs": costs,
        "renderId": ctx.render_id,
        "renderMetadata": metadata,
        "bucket": ctx.bucket,
        "outputFile": None,
        "separateAudio": None,
        "timeToFinish": None,
        "errors": errors,
        "fatalErrorEncountered": _fatal(errors),
        "currentTime": ctx.now_ms,
        "renderSize": 0,
        "lambdasInvoked": lambdas,
        "cleanup": cleanup,
        "timeToFinishChunks": chunk_time,
        "overallProgress": overall,
        "retriesInfo": doc.get("retries") or [],
        "outKey": None,
        "outBucket": None,
        "mostExpensiveFrameRanges": None,
        "timeToEncode": doc.get("timeToEncode"),
        "outputSizeInBytes": None,
        "estimatedBillingDurationInMilliseconds": None if billing is None else jsjson.num(billing),
        "combinedFrames": combined,
        "timeToCombine": doc.get("timeToCombine"),
        "timeoutTimestamp": doc.get("timeoutTimestamp"),
        "type": "success",
        "compositionValidated": doc.get("compositionValidated"),
        "functionLaunched": doc.get("functionLaunched"),
        "serveUrlOpened": doc.get("serveUrlOpened"),
        "artifacts": doc.get("receivedArtifact"),
    }
    return body
