"""``launch`` as serverless/src/handlers/launch.ts runs it: overheads, late validation,
renderMetadata, progress.json rewritten as chunks finish, the output and postRenderData."""

from __future__ import annotations

import json
import time

import pytest
from remotion_lambda.models import OutNameInputObject, ShouldDownload

from tests.emulator.conftest import (
    BUCKET,
    FUNCTION,
    control,
    params,
    progress_when,
    raw_progress,
    s3_client,
    wait_for,
)

# launch.ts catch: addErrorWithoutUpload({...}) key order
STITCHER_KEYS = [
    "chunk",
    "frame",
    "name",
    "stack",
    "type",
    "isFatal",
    "tmpDir",
    "attempt",
    "totalAttempts",
    "willRetry",
    "message",
]
# launch.ts renderMetadata, >= 4.0.535 (type 'video')
METADATA_KEYS = [
    "separateAudioTo",
    "separateAudioOutputFileIsConditional",
    "outputFileIsConditional",
    "startedDate",
    "totalChunks",
    "estimatedTotalLambdaInvokations",
    "estimatedRenderLambdaInvokations",
    "compositionId",
    "siteId",
    "type",
    "codec",
    "imageFormat",
    "muted",
    "inputProps",
    "lambdaVersion",
    "framesPerLambda",
    "memorySizeInMb",
    "region",
    "renderId",
    "outName",
    "privacy",
    "everyNthFrame",
    "frameRange",
    "audioCodec",
    "deleteAfter",
    "numberOfGifLoops",
    "downloadBehavior",
    "audioBitrate",
    "metadata",
    "functionName",
    "dimensions",
    "rendererFunctionName",
    "scale",
]
# create-post-render-data.ts
POST_RENDER_KEYS = [
    "cost",
    "outputFile",
    "separateAudio",
    "outputSequence",
    "timeToFinish",
    "errors",
    "startTime",
    "endTime",
    "outputSize",
    "renderSize",
    "filesCleanedUp",
    "timeToEncode",
    "timeToCleanUp",
    "timeToRenderChunks",
    "timeToRenderFrames",
    "retriesInfo",
    "mostExpensiveFrameRanges",
    "deleteAfter",
    "estimatedBillingDurationInMilliseconds",
    "timeToCombine",
    "artifactProgress",
]
TIMED = {  # at speed 100 the overheads apply unscaled
    "cold_start_ms": 30,
    "browser_ms": 40,
    "serve_url_ms": 20,
    "composition_ms": 30,
    "renderer_start_ms": 20,
    "combine_ms": 20,
    "finish_ms": 10,
    "upload_interval_ms": 20,
}


def _post_render_done(client, started):
    """Done from postRenderData (the output probe answers done a moment earlier)."""

    def check():
        progress = client.get_render_progress(started.render_id, started.bucket_name)
        return progress.done and progress.mostExpensiveFrameRanges is not None and progress

    return wait_for(check)


def _progress_json(server, render_id: str) -> dict:
    key = f"renders/{render_id}/progress.json"
    return json.loads(s3_client(server).get_object(Bucket=BUCKET, Key=key)["Body"].read())


def test_overheads_and_timestamps(make_server, make_client) -> None:
    server = make_server(speed=100, faults=TIMED)
    client = make_client(server)
    started = client.render_media_on_lambda(params(force_duration_in_frames=10))
    done = _post_render_done(client, started)
    [start_time] = control(server, "/_emulator/stats")["start_times_by_out_name"]["out-1.mp4"]
    launched = done.functionLaunched
    assert launched - round(start_time * 1000) in (29, 30, 31)  # cold start
    assert done.renderMetadata["startedDate"] == launched
    assert done.serveUrlOpened == launched + 60  # browser + serve URL
    assert done.compositionValidated == launched + 90
    assert done.timeoutTimestamp == launched + 120_000  # the -120sec in the function name
    # timeToFinish counts from the browser being ready: serve URL, composition, renderer
    # start, 10 frames at 100 fps, combine, finish.
    assert done.timeToFinish == 20 + 30 + 20 + 100 + 20 + 10


@pytest.mark.parametrize(
    ("fields", "name", "message", "validated"),
    [
        (
            {"composition": "Nope"},
            "Error",
            "Error: Could not find composition with ID Nope. Available compositions: Main, "
            "Intro, Recap, Story, Teaser, Broken, Bench, Fine, Long",
            False,
        ),
        (
            {"frames_per_lambda": 2},
            "TypeError",
            "The framesPerLambda needs to be at least 5, but is 2",
            True,
        ),
        (
            {"frames_per_lambda": 20, "concurrency": 3},
            "TypeError",
            "Both 'framesPerLambda' and 'concurrency' were set. Please use only one of them.",
            True,
        ),
        ({"concurrency": 201}, "TypeError", "'concurrency' cannot exceed 200, passed 201", True),
        (
            {"frame_range": [0, 500]},
            "Error",
            'The "durationInFrames" of the <Composition /> was evaluated to be 60, but frame '
            "range 0-500 is not inbetween 0-59",
            True,
        ),
        (
            {"frame_range": 100},
            "Error",
            "Frame number is out of range, must be between 0 and 59 but got 100",
            True,
        ),
        (
            {"force_duration_in_frames": 1005, "frames_per_lambda": 5},
            "Error",
            "Too many functions: This render would cause 201 functions to spawn. We limit this "
            "amount to 200 functions as more would result in diminishing returns. Values set: "
            "frameCount = 1005, framesPerLambda=5. See "
            "https://remotion.dev/docs/lambda/concurrency#too-many-functions for help.",
            True,
        ),
    ],
)
def test_late_validation(server, client, fields, name, message, validated) -> None:
    started = client.render_media_on_lambda(params(**fields))  # accepted at start
    progress = progress_when(client, started, "fatalErrorEncountered")
    assert progress.renderMetadata is None  # validation comes before setRenderMetadata
    assert progress.serveUrlOpened is not None
    assert (progress.compositionValidated is not None) is validated
    assert progress.costs["accruedSoFar"] == 0 and progress.costs["displayCost"] == "<$0.001"
    [error] = progress.errors
    assert error["message"] == message and error["name"] == name
    raw = _progress_json(server, started.render_id)["errors"][0]
    assert list(raw) == STITCHER_KEYS
    assert raw["type"] == "stitcher" and raw["isFatal"] is True and raw["willRetry"] is False
    assert raw["chunk"] is None and raw["frame"] is None
    assert raw["stack"].startswith(f"{name}: ")


def test_render_metadata(server, client) -> None:
    started = client.render_media_on_lambda(params(force_duration_in_frames=100))
    progress = progress_when(client, started, "done")
    metadata = progress.renderMetadata
    assert list(metadata) == METADATA_KEYS
    assert metadata["totalChunks"] == 5
    assert metadata["framesPerLambda"] == 20
    assert metadata["estimatedTotalLambdaInvokations"] == 6
    assert metadata["estimatedRenderLambdaInvokations"] == 5
    assert metadata["dimensions"] == {"width": 640, "height": 360}
    assert metadata["frameRange"] == [0, 99]
    assert metadata["functionName"] == metadata["rendererFunctionName"] == FUNCTION
    assert metadata["memorySizeInMb"] == 2048
    assert metadata["outputFileIsConditional"] is True  # overwrite: false
    assert metadata["inputProps"] == {"type": "payload", "payload": '{"title":"Hello"}'}
    assert metadata["siteId"].endswith("/sites/demo/index.html")


def test_progress_json_is_rewritten_as_chunks_finish(make_server, make_client) -> None:
    server = make_server(speed=100, faults={**TIMED, "upload_interval_ms": 60})
    client = make_client(server)
    started = client.render_media_on_lambda(
        params(force_duration_in_frames=250, frames_per_lambda=50)
    )
    # 250 frames at 100 fps: chunks finish over ~2.5 s, a window no sampling gap of a loaded
    # machine covers (with 50 frames, ~0.5 s, all five were once seen finishing at once).
    seen: list[tuple[int, int, int, object]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = _progress_json(server, started.render_id)
        seen.append(
            (
                len(body["chunks"]),
                body["framesRendered"],
                body["lambdasInvoked"],
                body["postRenderData"],
            )
        )
        if body["postRenderData"] is not None:
            break
        time.sleep(0.005)
    chunk_counts = [c for c, *_ in seen]
    assert chunk_counts == sorted(chunk_counts)
    assert any(0 < count < 5 for count in chunk_counts), chunk_counts  # one after the other
    frames = [f for _, f, *_ in seen]
    assert frames == sorted(frames) and any(0 < f < 250 for f in frames)
    assert seen[-1][2] == 5
    timings = body["timings"]
    assert [list(t) for t in timings] == [["chunk", "start", "rendered"]] * 5
    # The spread: chunk 3 is fastest; chunk 0 takes the whole frame phase, 250 frames / 100 fps.
    assert body["chunks"][0] == 3
    assert {t["chunk"]: t["rendered"] - t["start"] for t in timings}[0] == 2500
    assert list(body["postRenderData"]) == POST_RENDER_KEYS
    assert list(body["postRenderData"]["cost"]) == [
        "currency",
        "disclaimer",
        "estimatedCost",
        "estimatedDisplayCost",
    ]


def test_output_object_privacy_and_download_behavior(server, client) -> None:
    s3 = s3_client(server)
    cases = [
        ("public", "a.mp4", None, ["FULL_CONTROL", "READ"]),
        (
            "private",
            "b.mp4",
            ShouldDownload(type="download", fileName="my video.mp4"),
            ["FULL_CONTROL"],
        ),
        ("no-acl", "c.mp4", ShouldDownload(type="download", fileName=None), ["FULL_CONTROL"]),
    ]
    for privacy, out_name, behavior, permissions in cases:
        extra = {} if behavior is None else {"download_behavior": behavior}
        started = client.render_media_on_lambda(params(privacy=privacy, out_name=out_name, **extra))
        done = progress_when(client, started, "done")
        key = f"renders/{started.render_id}/{out_name}"
        assert done.outputFile == f"https://s3.us-east-1.amazonaws.com/{BUCKET}/{key}"
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ContentType"] == "video/mp4"
        assert head["ContentLength"] == done.outputSizeInBytes
        grants = s3.get_object_acl(Bucket=BUCKET, Key=key)["Grants"]
        assert [g["Permission"] for g in grants] == permissions
        expected = {
            "a.mp4": None,
            "b.mp4": 'attachment; filename="my%20video.mp4"',
            "c.mp4": "attachment",
        }[out_name]
        assert head.get("ContentDisposition") == expected


def test_an_existing_output_fails_unless_overwrite(server, client) -> None:
    target = OutNameInputObject(bucketName=BUCKET, key="videos/final.mp4")
    first = client.render_media_on_lambda(params(out_name=target))
    progress_when(client, first, "done")
    second = client.render_media_on_lambda(params(out_name=target))
    failed = progress_when(client, second, "fatalErrorEncountered")
    assert failed.errors[0]["name"] == "TypeError"
    assert failed.errors[0]["message"] == (
        f'Output file "videos/final.mp4" in bucket "{BUCKET}" in region "us-east-1" already '
        "exists. Delete it before re-rendering, or set the 'overwrite' option in "
        "renderMediaOnLambda() to overwrite it."
    )
    third = client.render_media_on_lambda(params(out_name=target, overwrite=True))
    assert progress_when(client, third, "done").outKey == "videos/final.mp4"


def test_concurrency_one_renders_on_the_launch_function(server, client) -> None:
    started = client.render_media_on_lambda(params(concurrency=1))
    done = progress_when(client, started, "done")
    assert done.renderMetadata["estimatedRenderLambdaInvokations"] == 0
    assert done.renderMetadata["estimatedTotalLambdaInvokations"] == 1
    assert done.timeToCombine is None
    stats = control(server, "/_emulator/stats")
    assert stats["renderer_invocations"] == 0
    assert "renderer" not in stats["concurrency"]["peak_by_kind"]
    wait_for(lambda: raw_progress(server, started.render_id)["done"])


def test_status_is_done_from_the_output_before_post_render_data(make_server, make_client) -> None:
    # progress.ts: once all chunks are in, combined and timeToCombine uploaded, it HEADs
    # the output; if it is there, done -- before finish-render.ts writes postRenderData.
    server = make_server(speed=100, faults={**TIMED, "finish_ms": 400})
    client = make_client(server)
    started = client.render_media_on_lambda(params(force_duration_in_frames=10))
    early = progress_when(client, started, "done")
    assert early.mostExpensiveFrameRanges is None
    assert early.cleanup == {"doneIn": None, "filesDeleted": 0, "minFilesToDelete": 0}
    assert early.costs["disclaimer"].startswith("Estimated cost only.")  # formatCostsInfo
    assert early.timeToFinish == early.currentTime - early.renderMetadata["startedDate"]
    later = _post_render_done(client, started)
    assert later.costs["disclaimer"].startswith("Estimated cost for function invocations only.")
    assert later.cleanup["doneIn"] == 0
