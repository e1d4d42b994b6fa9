"""Chunk failures: flaky ones retried (stream-renderer.ts, is-flaky-error.ts), others fatal."""

from __future__ import annotations

from tests.emulator.conftest import control, params, progress_when

# handlers/renderer.ts errorInfo
RENDERER_ERROR_KEYS = [
    "name",
    "message",
    "stack",
    "chunk",
    "frame",
    "type",
    "isFatal",
    "tmpDir",
    "attempt",
    "totalAttempts",
    "willRetry",
]


def _fault(**directive: object) -> dict[str, object]:
    return {"title": "x", "__emulator__": directive}


def test_a_flaky_chunk_error_is_retried(server, client) -> None:
    started = client.render_media_on_lambda(
        params(force_duration_in_frames=60, input_props=_fault(fail_chunk=1))
    )
    done = progress_when(client, started, "done")
    [error] = done.errors
    assert list(error)[: len(RENDERER_ERROR_KEYS)] == RENDERER_ERROR_KEYS
    assert error["type"] == "renderer" and error["chunk"] == 1 and error["frame"] is None
    assert error["message"] == "socket hang up" and error["name"] == "Error"
    assert error["isFatal"] is False and error["willRetry"] is True
    assert (error["attempt"], error["totalAttempts"]) == (1, 2)
    assert error["explanation"] is None and error["s3Location"] == ""
    [retry] = done.retriesInfo
    assert list(retry) == ["attempt", "time", "chunk"]
    assert (retry["attempt"], retry["chunk"]) == (2, 1)
    assert done.fatalErrorEncountered is False
    assert control(server, "/_emulator/stats")["renderer_retries"] == 1


def test_past_max_retries_it_is_fatal(server, client) -> None:
    started = client.render_media_on_lambda(
        params(input_props=_fault(fail_chunk=0, fail_attempts=2), max_retries=1)
    )
    failed = progress_when(client, started, "fatalErrorEncountered")
    first, second, stitcher = failed.errors
    assert (first["attempt"], first["willRetry"], first["isFatal"]) == (1, True, False)
    assert (second["attempt"], second["willRetry"], second["isFatal"]) == (2, False, True)
    assert second["totalAttempts"] == 2
    assert stitcher["type"] == "stitcher"
    assert stitcher["message"] == second["stack"]  # launch throws new Error(renderer stack)
    assert len(failed.retriesInfo) == 1
    zero = client.render_media_on_lambda(
        params(input_props=_fault(fail_chunk=0), max_retries=0, out_name="zero.mp4")
    )
    [renderer, _] = progress_when(client, zero, "fatalErrorEncountered").errors
    assert renderer["willRetry"] is False and renderer["totalAttempts"] == 1


def test_a_non_flaky_chunk_error_is_fatal_at_once(server, client) -> None:
    message = "Could not load image assets/missing.png"
    started = client.render_media_on_lambda(
        params(input_props=_fault(fail_chunk=2, fail_message=message), force_duration_in_frames=60)
    )
    failed = progress_when(client, started, "fatalErrorEncountered")
    renderer, stitcher = failed.errors
    assert renderer["message"] == message and renderer["chunk"] == 2
    assert (renderer["isFatal"], renderer["willRetry"], renderer["totalAttempts"]) == (
        True,
        False,
        2,
    )
    assert stitcher["message"] == f"Error: {message}\n    at <anonymous> (/var/task/index.js)"
    assert failed.retriesInfo == []
    assert failed.done is False and failed.outputFile is None
