"""The ``launch`` function of a render, step by step, as events on the emulator's clock.

Follows ``serverless/src/handlers/launch.ts`` (>= 4.0.535). The start invokes launch
asynchronously; AWS runs it once the account has a slot (else it waits in AWS's queue).
After a cold start the handler creates a fresh progress object (it does not read the
start's progress.json; its first upload replaces it), arms the timeout webhook at
``max(remaining - 1000, 1000)`` ms, reads large input props from S3, starts the browser,
opens the serve URL (``serveUrlOpened``), validates the composition and the payload
(``compositionValidated``; any failure is a fatal ``stitcher`` error, which is where an
unknown composition shows up), checks that the output does not exist yet, writes
``renderMetadata`` and invokes the renderers (:mod:`devtools.emulator.renderers`). When
all chunks are in, the chunks are combined (``merge-chunks.ts``), the output is uploaded
and ``postRenderData`` written (``finish-render.ts``, ``create-post-render-data.ts``);
then the success webhook. A fatal error instead writes cancel.json (if cancellation is
enabled), adds the ``stitcher`` error and, after that upload, sends the error webhook.

progress.json is uploaded the way ``overall-render-progress.ts`` does: a change starts a
write at once, and further changes within the next 250 ms (scaled) are coalesced into the
next write; ``await upload()`` returns once the loop has gone idle.
"""

from __future__ import annotations

from devtools.emulator import jsjson, texts, validation
from devtools.emulator.constants import JSONDict
from devtools.emulator.finish import FinishMixin
from devtools.emulator.progress_file import OverallProgress
from devtools.emulator.render import Render
from devtools.emulator.texts import RemotionError
from devtools.emulator.uploads import expected_output


class LaunchMixin(FinishMixin):
    """LambdaEmulator's launch function up to the renderers (see the module docstring)."""

    def _ev_launch_invoke(self, now: float, render: Render) -> None:
        """callFunctionAsync({type: 'launch'}) from start.ts reaches Lambda."""
        if not self._account.acquire("launch"):
            # AWS queues throttled Event invocations and retries them; _release starts it.
            render.launch_state = "queued"
            self._launch_queue.append(render)
            self._counters.launches_queued += 1
            return
        self._launch_begin(now, render)

    def _launch_begin(self, now: float, render: Render) -> None:
        render.launch_state = "running"
        render.launch_slot = True
        self._push(
            now + render.timing.cold_start, self._ev_handler_start, render, auto=render.autonomous
        )

    def _ev_handler_start(self, now: float, render: Render) -> None:
        if not render.launch_alive:
            return
        render.handler_started_at = now
        timeout_ms = render.function.timeout_ms
        render.progress = OverallProgress(
            self._ms(now) + timeout_ms, self._ms(now), render.cancellation_enabled
        )
        # launchHandler: setTimeout(onTimeout, Math.max(getRemainingTimeInMillis() - 1000, 1000))
        self._push(
            now + max(timeout_ms - 1000, 1000) / 1000,
            self._ev_timeout_webhook,
            render,
            auto=render.autonomous,
        )
        self._push(
            now + timeout_ms / 1000, self._ev_function_timeout, render, auto=render.autonomous
        )
        try:
            validation.check_before_browser(render.payload)
            self._read_input_props(render)
        except RemotionError as exc:
            self._launch_fatal(now, render, exc)
            return
        timing = render.timing
        render.start_time = now + timing.browser
        self._push(
            now + timing.browser + timing.serve_url,
            self._ev_serve_url_opened,
            render,
            auto=render.autonomous,
        )

    def _read_input_props(self, render: Render) -> None:
        """decompressInputProps: a bucket-url reference is read from the *render* bucket."""
        serialized = render.payload.get("inputProps")
        if not isinstance(serialized, dict) or serialized.get("type") != "bucket-url":
            return
        key = f"input-props/{serialized.get('hash')}.json"  # input-props-keys.ts
        bucket_exists, body = self._get_object_internal(render.bucket, key)
        if body is None:
            code, message = (
                ("NoSuchKey", "The specified key does not exist.")
                if bucket_exists
                else ("NoSuchBucket", "The specified bucket does not exist")
            )
            s3_stack = texts.stack_of(code, message, "de_NoSuchKeyRes (/var/task/index.js)")
            raise RemotionError(texts.input_props_unreadable(s3_stack))

    def _ev_serve_url_opened(self, now: float, render: Render) -> None:
        if not render.launch_alive or render.fatal is not None:
            return
        assert render.progress is not None
        render.progress.serve_url_opened = self._ms(now)
        self._progress_changed(now, render)
        self._push(
            now + render.timing.composition + render.timing.metadata_delay,
            self._ev_composition,
            render,
            auto=render.autonomous,
        )

    def _ev_composition(self, now: float, render: Render) -> None:
        if not render.launch_alive or render.fatal is not None:
            return
        progress = render.progress
        assert progress is not None
        try:
            composition = validation.select_composition(self._faults.compositions, render.payload)
        except RemotionError as exc:
            self._launch_fatal(now, render, exc)
            return
        progress.composition_validated = self._ms(now)
        self._progress_changed(now, render)
        try:
            plan = validation.plan_render(render.payload, composition, render.function.memory_mb)
            render.plan = plan
            bucket, key = expected_output(render.render_id, render.bucket, render.payload)
            render.output_bucket, render.output_key = bucket, key
            render.output_size = (
                composition.width * composition.height * plan.frame_count // 80 + 4096
            )
            if not render.payload.get("overwrite"):
                _, found = self._get_object_internal(bucket, key)
                self._counters.internal_s3_calls["HeadObject"] += 1
                if found is not None:
                    raise texts.type_error(texts.output_exists(key, bucket, self.region))
        except RemotionError as exc:
            self._launch_fatal(now, render, exc)
            return
        render.runs = [None] * plan.chunks
        progress.render_metadata = self._render_metadata(now, render)
        self._progress_changed(now, render)
        self._start_renderers(now, render)

    def _render_metadata(self, now: float, render: Render) -> JSONDict:
        """renderMetadata, >= 4.0.535 key order (launch.ts)."""
        plan = render.plan
        assert plan is not None
        payload = render.payload
        out_name = payload.get("outName")
        if isinstance(out_name, dict):  # remove-outname-credentials.ts
            provider = out_name.get("s3OutputProvider")
            out_name = {"bucketName": out_name.get("bucketName"), "key": out_name.get("key")}
            if isinstance(provider, dict):
                out_name["s3OutputProvider"] = {"endpoint": provider.get("endpoint")}
        scale = payload.get("scale", 1)
        scale = 1 if scale is None else scale
        metadata: JSONDict = {
            "separateAudioTo": None,
            "separateAudioOutputFileIsConditional": None,
            "outputFileIsConditional": not payload.get("overwrite"),
            "startedDate": self._ms(render.handler_started_at or now),
            "totalChunks": plan.chunks,
            "estimatedTotalLambdaInvokations": plan.functions,
            "estimatedRenderLambdaInvokations": 0 if plan.direct else plan.chunks,
            "compositionId": plan.composition.id,
            "siteId": payload.get("serveUrl"),
            "type": "video",
            "codec": payload.get("codec"),
            "imageFormat": payload.get("imageFormat"),
            "muted": payload.get("muted", False),
            "inputProps": payload.get("inputProps"),
            "lambdaVersion": self.remotion_version,
            "framesPerLambda": plan.frames_per_lambda,
            "memorySizeInMb": render.function.memory_mb,
            "region": self.region,
            "renderId": render.render_id,
        }
        if out_name is not None:  # JSON.stringify drops the undefined outName
            metadata["outName"] = out_name
        metadata.update(
            {
                "privacy": payload.get("privacy"),
                "everyNthFrame": plan.every_nth,
                "frameRange": list(plan.frame_range),
                "audioCodec": payload.get("audioCodec"),
                "deleteAfter": payload.get("deleteAfter"),
                "numberOfGifLoops": payload.get("numberOfGifLoops"),
                "downloadBehavior": payload.get("downloadBehavior"),
                "audioBitrate": payload.get("audioBitrate"),
                "metadata": payload.get("metadata"),
                "functionName": render.function.name,
                "dimensions": {
                    "width": jsjson.num(plan.composition.width * scale),
                    "height": jsjson.num(plan.composition.height * scale),
                },
                "rendererFunctionName": render.renderer_function.name,
                "scale": scale,
            }
        )
        return metadata

    # -- finishing ---------------------------------------------------------------------------
