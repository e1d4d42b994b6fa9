"""How a render's launch function ends: combined and finished, failed, or timed out.

Success follows ``serverless/src/merge-chunks.ts`` (the combine, ``setCombinedFrames`` and
``setTimeToCombine``), ``finish-render.ts`` (upload the output with the render's ACL and
Content-Disposition, clean up ``input-props/``) and ``create-post-render-data.ts``, then
the success webhook (``launch.ts``). Failure is ``launchHandler``'s catch: write cancel.json
if cancellation is enabled, add the fatal ``stitcher`` error (key order of launch.ts), wait
for the upload, send the error webhook; a webhook that fails is recorded as a non-fatal
``webhook`` error (with the *render's* error for the error webhook, a Remotion quirk). The
timeout webhook fires at ``max(remaining - 1000, 1000)`` ms unless the render ended first;
at the function timeout AWS kills the launch, and nothing more is written.
"""

from __future__ import annotations

from devtools.emulator import aws, jsjson
from devtools.emulator.constants import JSONDict
from devtools.emulator.render import Render
from devtools.emulator.reporting import billing_duration, chunk_times, inspect_errors
from devtools.emulator.s3 import StoredObject, media_type, quoted_md5
from devtools.emulator.texts import RemotionError
from devtools.emulator.uploads import UploadMixin, acl_for, cancel_key, content_disposition


class FinishMixin(UploadMixin):
    """LambdaEmulator's end of a launch (see the module docstring)."""

    def _start_combine(self, now: float, render: Render) -> None:
        plan = render.plan
        assert plan is not None and render.progress is not None
        if plan.direct:
            # render-with-single-function.ts: setCombinedFrames(frameCount), no concatenation.
            render.progress.combined_frames = plan.frame_count
            self._finish(now, render, time_to_combine=None)
            return
        render.combine_started = now
        render.combine_ends = now + render.timing.combine
        self._push(render.combine_ends, self._ev_combined, render, auto=render.autonomous)

    def _ev_combined(self, now: float, render: Render) -> None:
        if not render.launch_alive or render.fatal is not None:
            return
        progress = render.progress
        assert progress is not None and render.plan is not None
        progress.combined_frames = render.plan.frame_count
        assert render.combine_started is not None
        progress.time_to_combine = self._ms(now) - self._ms(render.combine_started)
        self._progress_changed(now, render)
        self._finish(now, render, progress.time_to_combine)

    def _finish(self, now: float, render: Render, time_to_combine: int | None) -> None:
        """finish-render.ts: upload the output, clean up the props, write postRenderData."""
        assert render.output_bucket is not None and render.output_key is not None
        payload = render.payload
        output = StoredObject(
            b"",
            media_type(render.output_key),
            self._ms(now),
            padding=render.output_size,
            acl=acl_for(payload.get("privacy")),
            content_disposition=content_disposition(payload.get("downloadBehavior")),
            etag=quoted_md5(
                f"{render.render_id}/{render.output_key}/{render.output_size}".encode()
            ),
        )
        if not self._put_object(now, render.output_bucket, render.output_key, output, "PutObject"):
            error = RemotionError("The specified bucket does not exist", "NoSuchBucket")
            self._launch_fatal(now, render, error)
            return
        cleanup_ms = 0
        serialized = payload.get("inputProps")
        if isinstance(serialized, dict) and serialized.get("type") == "bucket-url":
            # cleanup-serialized-input-props.ts deletes from serialized.bucketName
            self._delete_object_internal(
                str(serialized.get("bucketName")), f"input-props/{serialized.get('hash')}.json"
            )
            cleanup_ms = max(1, round(render.timing.finish * 1000 / 2))
        self._push(
            now + render.timing.finish,
            self._ev_post_render,
            render,
            time_to_combine,
            cleanup_ms,
            auto=render.autonomous,
        )

    def _ev_post_render(
        self, now: float, render: Render, time_to_combine: int | None, cleanup_ms: int
    ) -> None:
        if not render.launch_alive or render.fatal is not None:
            return
        assert render.progress is not None
        render.progress.post_render_data = self._post_render_data(
            now, render, time_to_combine, cleanup_ms
        )
        render.outcome = "done"
        render.finished_at = now
        self._counters.outcomes["done"] += 1
        self._progress_changed(now, render, then=self._after_success_upload)

    def _post_render_data(
        self, now: float, render: Render, time_to_combine: int | None, cleanup_ms: int
    ) -> JSONDict:
        """serverless/src/create-post-render-data.ts, key order included."""
        progress, plan = render.progress, render.plan
        assert progress is not None and plan is not None and progress.render_metadata is not None
        metadata = progress.render_metadata
        timings = progress.timings
        billing = billing_duration(timings, len(timings), 0)
        parsed = aws.parse_function_name(render.renderer_function.name)
        memory = parsed[1] if parsed is not None else render.function.memory_mb
        cost = aws.estimate_price(self.region, billing, memory, plan.functions)
        first, last = plan.frame_range
        fpl = plan.frames_per_lambda
        ranked = sorted(timings, key=lambda t: t["rendered"] - t["start"], reverse=True)[:5]
        expensive = [  # most-expensive-chunks.ts
            {
                "timeInMilliseconds": t["rendered"] - t["start"],
                "chunk": t["chunk"],
                "frameRange": [
                    fpl * t["chunk"] + first,
                    last if t["chunk"] == len(timings) - 1 else fpl * (t["chunk"] + 1) - 1 + first,
                ],
            }
            for t in ranked
        ]
        assert render.start_time is not None and render.output_key is not None
        url = aws.output_url(self.region, str(render.output_bucket), render.output_key)
        return {
            "cost": aws.post_render_cost(cost, self.region),
            "outputFile": url,
            "separateAudio": None,
            "outputSequence": None,
            "timeToFinish": self._ms(now) - self._ms(render.start_time),
            "errors": inspect_errors(progress.errors),
            "startTime": metadata["startedDate"],
            "endTime": self._ms(now),
            "outputSize": render.output_size,
            "renderSize": render.output_size,
            "filesCleanedUp": 0,
            "timeToEncode": progress.time_to_encode,
            "timeToCleanUp": cleanup_ms,
            "timeToRenderChunks": chunk_times(timings),
            "timeToRenderFrames": progress.time_to_render_frames,
            "retriesInfo": list(progress.retries),
            "mostExpensiveFrameRanges": expensive,
            "deleteAfter": metadata.get("deleteAfter"),
            "estimatedBillingDurationInMilliseconds": billing,
            "timeToCombine": time_to_combine,
            "artifactProgress": list(progress.received_artifact),
        }

    def _after_success_upload(self, now: float, render: Render) -> None:
        render.timeout_cleared = True  # clearTimeout(webhookDueToTimeout)
        if render.webhook is None or render.webhook_invoked:
            self._launch_end(now, render)
            return
        assert render.progress is not None
        prd = render.progress.post_render_data
        assert prd is not None
        payload = self._webhook_static("success", render)
        payload.update(
            {
                "outputUrl": prd["outputFile"],
                "lambdaErrors": prd["errors"],
                "outputFile": prd["outputFile"],
                "separateAudio": prd["separateAudio"],
                "outputSequence": prd["outputSequence"],
                "timeToFinish": prd["timeToFinish"],
                "costs": prd["cost"],
            }
        )

        def done(at: float, error: RemotionError | None) -> None:
            if error is None:
                render.webhook_invoked = True
            else:
                self._webhook_error(at, render, error)
            self._launch_end(at, render)

        self._send_webhook(now, render, payload, done)

    # -- failure, timeout, end -----------------------------------------------------------------

    def _launch_fatal(self, now: float, render: Render, error: RemotionError) -> None:
        """launchHandler's catch: cancel the others, add the stitcher error, upload, webhook."""
        if not render.launch_alive or render.fatal is not None or render.outcome == "done":
            return
        render.fatal = error
        render.failed_at = now
        if render.outcome is None:
            render.outcome = "cancelled" if render.cancel_requested_at is not None else "failed"
            self._counters.outcomes[render.outcome] += 1
        self._cancel_other_renderers(now, render)
        assert render.progress is not None
        render.progress.add_error(
            {
                "chunk": None,
                "frame": None,
                "name": error.name,
                "stack": error.stack,
                "type": "stitcher",
                "isFatal": True,
                "tmpDir": None,
                "attempt": 1,
                "totalAttempts": 1,
                "willRetry": False,
                "message": error.message,
            },
            self._ms(now),
        )
        self._progress_changed(now, render, then=self._after_fatal_upload)

    def _after_fatal_upload(self, now: float, render: Render) -> None:
        render.timeout_cleared = True
        error = render.fatal
        assert error is not None
        if render.webhook is None or render.webhook_invoked:
            self._launch_end(now, render)
            return
        payload = self._webhook_static("error", render)
        payload["errors"] = [{"message": error.message, "name": error.name, "stack": error.stack}]

        def done(at: float, failure: RemotionError | None) -> None:
            if failure is None:
                render.webhook_invoked = True
            else:
                # launch.ts records the *render's* error here, not the webhook's (sic).
                self._webhook_error(at, render, error)
            self._launch_end(at, render)

        self._send_webhook(now, render, payload, done)

    def _cancel_other_renderers(self, now: float, render: Render) -> None:
        if render.cancellation_enabled:  # write-cancellation-signal.ts
            body = jsjson.dumps_bytes({"cancelledAt": self._ms(now)})
            obj = StoredObject(body, "application/json", self._ms(now), acl="private")
            self._put_object(now, render.bucket, cancel_key(render.render_id), obj, "PutObject")

    def _ev_timeout_webhook(self, now: float, render: Render) -> None:
        """onTimeout: no fatal error is written; getProgress synthesises the TimeoutError."""
        if render.timeout_cleared or not render.launch_alive:
            return
        self._cancel_other_renderers(now, render)
        if render.webhook is None or render.webhook_invoked:
            return

        def done(at: float, error: RemotionError | None) -> None:
            if error is None:
                render.webhook_invoked = True
            else:
                self._webhook_error(at, render, error)

        self._send_webhook(now, render, self._webhook_static("timeout", render), done)

    def _webhook_error(self, now: float, render: Render, error: RemotionError) -> None:
        if not render.launch_alive or render.progress is None:
            return
        render.progress.add_error(
            {
                "type": "webhook",
                "message": error.message,
                "name": error.name,
                "stack": error.stack,
                "tmpDir": None,
                "frame": 0,
                "chunk": 0,
                "isFatal": False,
                "attempt": 1,
                "willRetry": False,
                "totalAttempts": 1,
            },
            self._ms(now),
        )
        self._progress_changed(now, render)

    def _webhook_static(self, kind: str, render: Render) -> JSONDict:
        """webhook-types.ts StaticWebhookPayload, with the type first (launch.ts)."""
        assert render.webhook is not None
        return {
            "type": kind,
            "renderId": render.render_id,
            "expectedBucketOwner": self.account_id,
            "bucketName": render.bucket,
            "customData": render.webhook.get("customData"),
        }

    def _ev_function_timeout(self, now: float, render: Render) -> None:
        """The launch function hits its Lambda timeout: AWS kills it mid-render."""
        if render.launch_state != "running":
            return
        render.launch_state = "killed"
        render.upload_waiters.clear()
        if render.outcome is None:
            render.outcome = "timeout"
            self._counters.outcomes["timeout"] += 1
        self._drop_launch_slot(now, render)

    def _launch_end(self, now: float, render: Render) -> None:
        if render.launch_state != "running":
            return
        render.launch_state = "ended"
        self._drop_launch_slot(now, render)

    def _drop_launch_slot(self, now: float, render: Render) -> None:
        if render.launch_slot:
            render.launch_slot = False
            self._release("launch", now)
        self._note_stopped(now, render)

    def _note_stopped(self, now: float, render: Render) -> None:
        """Remember when the last function of a cancelled render stopped (stats)."""
        if render.cancel_requested_at is None or render.functions_running() != 0:
            return
        if render.functions_stopped_at is None or now > render.functions_stopped_at:
            render.functions_stopped_at = now
