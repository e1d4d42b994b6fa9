"""``renders/<id>/progress.json``: the object a render's launch function keeps and uploads.

:class:`OverallProgress` follows ``serverless/src/overall-render-progress.ts``
(``makeInitialOverallRenderProgress`` and the setters of ``makeOverallRenderProgress``,
>= 4.0.535 key order). Uploads are snapshots: :meth:`OverallProgress.snapshot` copies the
scalar fields and the lengths of the append-only lists, so a write costs a few dozen
assignments, and the JSON document is only built when someone reads the object (then
cached per snapshot). The upload *loop* (one write, then at least 250 ms until the next,
changes in between coalesced) is driven by :mod:`devtools.emulator.launch`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from devtools.emulator import jsjson
from devtools.emulator.constants import JSONDict

_SCALARS = (
    "cancellation_enabled",
    "frames_rendered",
    "frames_encoded",
    "combined_frames",
    "time_to_combine",
    "time_to_encode",
    "lambdas_invoked",
    "post_render_data",
    "render_metadata",
    "fatal_error_timestamp",
    "time_to_render_frames",
    "timeout_timestamp",
    "function_launched",
    "serve_url_opened",
    "composition_validated",
)


class OverallProgress:
    """One render's live progress object (mutated by the launch under the emulator lock)."""

    __slots__ = (
        *_SCALARS,
        "chunks",
        "errors",
        "received_artifact",
        "retries",
        "timings",
        "version",
    )

    def __init__(self, timeout_timestamp: int, function_launched: int, cancellation: bool):
        # makeInitialOverallRenderProgress(timeoutTimestamp, cancellationEnabled)
        self.cancellation_enabled = cancellation
        self.chunks: list[int] = []
        self.frames_rendered = 0
        self.frames_encoded = 0
        self.combined_frames = 0
        self.time_to_combine: int | None = None
        self.time_to_encode: int | None = None
        self.lambdas_invoked = 0
        self.retries: list[JSONDict] = []
        self.post_render_data: JSONDict | None = None
        self.timings: list[JSONDict] = []
        self.render_metadata: JSONDict | None = None
        self.errors: list[JSONDict] = []
        self.fatal_error_timestamp: int | None = None
        self.time_to_render_frames: int | None = None
        self.timeout_timestamp = timeout_timestamp
        self.function_launched = function_launched
        self.serve_url_opened: int | None = None
        self.composition_validated: int | None = None
        self.received_artifact: list[JSONDict] = []
        self.version = 0

    def add_error(self, entry: JSONDict, now_ms: int) -> None:
        """``addErrorWithoutUpload``: also stamps ``fatalErrorTimestamp`` on the first fatal."""
        self.errors.append(entry)
        if entry.get("isFatal") and self.fatal_error_timestamp is None:
            self.fatal_error_timestamp = now_ms

    def snapshot(self, written_ms: int) -> Snapshot:
        self.version += 1
        return Snapshot(self, written_ms)


class Snapshot:
    """progress.json as one upload wrote it."""

    __slots__ = ("_body", "_document", "_etag", "_lengths", "_live", "_values", "written_ms")

    def __init__(self, live: OverallProgress, written_ms: int) -> None:
        self._live = live
        self._values = tuple(getattr(live, name) for name in _SCALARS)
        self._lengths = (
            len(live.chunks),
            len(live.retries),
            len(live.timings),
            len(live.errors),
            len(live.received_artifact),
        )
        self.written_ms = written_ms
        self._document: JSONDict | None = None
        self._body: bytes | None = None
        self._etag: str | None = None

    def document(self) -> JSONDict:
        """The parsed JSON, as ``JSON.parse`` of the body would give it (do not mutate)."""
        if self._document is None:
            values: dict[str, Any] = dict(zip(_SCALARS, self._values, strict=True))
            live = self._live
            n_chunks, n_retries, n_timings, n_errors, n_artifacts = self._lengths
            self._document = {
                "cancellationEnabled": values["cancellation_enabled"],
                "chunks": live.chunks[:n_chunks],
                "framesRendered": values["frames_rendered"],
                "framesEncoded": values["frames_encoded"],
                "framesUploaded": 0,
                "uploadedSizeInBytes": 0,
                "combinedFrames": values["combined_frames"],
                "timeToCombine": values["time_to_combine"],
                "timeToEncode": values["time_to_encode"],
                "lambdasInvoked": values["lambdas_invoked"],
                "retries": live.retries[:n_retries],
                "postRenderData": values["post_render_data"],
                "separateAudio": None,
                "timings": live.timings[:n_timings],
                "renderMetadata": values["render_metadata"],
                "errors": live.errors[:n_errors],
                "fatalErrorTimestamp": values["fatal_error_timestamp"],
                "timeToRenderFrames": values["time_to_render_frames"],
                "timeoutTimestamp": values["timeout_timestamp"],
                "functionLaunched": values["function_launched"],
                "serveUrlOpened": values["serve_url_opened"],
                "compositionValidated": values["composition_validated"],
                "receivedArtifact": live.received_artifact[:n_artifacts],
            }
        return self._document

    def body(self) -> bytes:
        if self._body is None:
            self._body = jsjson.dumps_bytes(self.document())
        return self._body

    def etag(self) -> str:
        if self._etag is None:
            self._etag = f'"{hashlib.md5(self.body(), usedforsecurity=False).hexdigest()}"'
        return self._etag
