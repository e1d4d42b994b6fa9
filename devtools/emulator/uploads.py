"""progress.json uploads, and the S3 keys and object settings a launch writes with.

The upload loop of ``serverless/src/overall-render-progress.ts`` (``runUploadLoop``): a
change starts a write at once; changes within the next 250 ms (scaled like the render)
are coalesced into the next write; while renderers or the combine keep reporting, a write
goes out every interval; ``await upload()`` resolves once the loop has gone idle. Writes
are snapshots (:mod:`devtools.emulator.progress_file`). Also the keys and headers
Remotion uses: ``serverless-client/src/constants.ts`` (progress and cancel keys),
``expected-out-name.ts`` (the output key), ``lambda-client/src/write-file.ts`` (ACL) and
``content-disposition-header.ts`` (downloadBehavior).
"""

from __future__ import annotations

from collections.abc import Callable

from devtools.emulator.constants import JSONDict
from devtools.emulator.render import Render
from devtools.emulator.s3 import ProgressObject
from devtools.emulator.state import EmulatorState

_CODEC_EXTENSIONS = {
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
_MIN_UPLOAD_INTERVAL_S = 0.001


def progress_key(render_id: str) -> str:
    return f"renders/{render_id}/progress.json"  # serverless-client/src/constants.ts


def cancel_key(render_id: str) -> str:
    return f"renders/{render_id}/cancel.json"  # serverless-client/src/constants.ts


def expected_output(render_id: str, bucket: str, payload: JSONDict) -> tuple[str, str]:
    """serverless-client/src/expected-out-name.ts: (bucket, key) of the output."""
    out_name = payload.get("outName")
    if isinstance(out_name, dict) and isinstance(out_name.get("key"), str):
        return str(out_name.get("bucketName") or bucket), str(out_name["key"])
    if isinstance(out_name, str) and out_name:
        return bucket, f"renders/{render_id}/{out_name}"
    extension = _CODEC_EXTENSIONS.get(str(payload.get("codec")), "mp4")
    return bucket, f"renders/{render_id}/out.{extension}"


def content_disposition(behavior: object) -> str | None:
    """lambda-client/src/content-disposition-header.ts"""
    if not isinstance(behavior, dict) or behavior.get("type") != "download":
        return None
    name = behavior.get("fileName")
    if name is None:
        return "attachment"
    from urllib.parse import quote

    encoded_already = any(
        code in str(name)
        for code in ("%3A", "%2F", "%3F", "%23", "%5B", "%5D", "%40", "%21", "%24", "%26")
    )
    return f'attachment; filename="{name if encoded_already else quote(str(name), safe="")}"'


def acl_for(privacy: object) -> str | None:
    # lambda-client/src/write-file.ts: no-acl -> no ACL, private -> private, else public-read
    if privacy == "no-acl":
        return None
    return "private" if privacy == "private" else "public-read"


class UploadMixin(EmulatorState):
    """LambdaEmulator's progress.json upload loop (see the module docstring)."""

    def _progress_changed(
        self,
        now: float,
        render: Render,
        then: Callable[[float, Render], None] | None = None,
    ) -> None:
        if not render.launch_alive or render.progress is None:
            return
        render.upload_dirty = True
        if then is not None:
            render.upload_waiters.append(then)
        if not render.upload_busy:
            self._progress_write(now, render)
            render.upload_busy = True
            self._push(
                self._next_tick(now, render), self._ev_upload_tick, render, auto=render.autonomous
            )

    def _next_tick(self, now: float, render: Render) -> float:
        return now + max(render.timing.upload_interval, _MIN_UPLOAD_INTERVAL_S)

    def _ev_upload_tick(self, now: float, render: Render) -> None:
        if not render.launch_alive:
            render.upload_busy = False
            render.upload_waiters.clear()
            return
        if render.upload_dirty or render.changing(now):
            self._progress_write(now, render)
            self._push(
                self._next_tick(now, render), self._ev_upload_tick, render, auto=render.autonomous
            )
            return
        render.upload_busy = False
        waiters, render.upload_waiters = render.upload_waiters, []
        for waiter in waiters:
            waiter(now, render)

    def _progress_write(self, now: float, render: Render) -> None:
        progress = render.progress
        assert progress is not None
        render.upload_dirty = False
        if render.fatal is None:
            progress.frames_rendered = progress.frames_encoded = render.frames(now)
            if progress.time_to_combine is None:
                progress.combined_frames = render.combined(now)
        snapshot = progress.snapshot(self._ms(now))
        self._put_object(
            now,
            render.bucket,
            progress_key(render.render_id),
            ProgressObject(snapshot),
            "PutObject",
        )
        if progress.post_render_data is not None and render.done_visible_at is None:
            # From now on a progress call can say done (the bench's completion latency).
            render.done_visible_at = now
