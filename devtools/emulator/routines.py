"""The other synchronous routines: ``status``, ``still``, ``info`` and ``compositions``.

``status`` follows ``serverless/src/handlers/progress.ts``: the version check and every
error are *unhandled* (``lambda/src/functions/index.ts`` only catches for info, start and
compositions); a missing progress.json is retried three times, 1 s apart, when S3 reports
``NotFound`` (the default ``missing_progress_mode``, giving "No render with ID"), or fails at
once with ``NoSuchKey``. The body is :func:`devtools.emulator.status.get_progress`. ``still``
follows ``handlers/still.ts`` (handled errors, except a bad ``deleteAfter``), ``info``
``serverless/src/info.ts`` and ``compositions`` ``handlers/compositions.ts``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from devtools.emulator import aws, jsjson, texts
from devtools.emulator.aws import FunctionConfig
from devtools.emulator.constants import (
    NO_RENDER_ATTEMPTS,
    JSONDict,
)
from devtools.emulator.progress_file import OverallProgress
from devtools.emulator.responses import InvokeResult, success, unhandled_error
from devtools.emulator.s3 import ProgressObject, StoredObject, media_type
from devtools.emulator.site import Composition
from devtools.emulator.start import StartMixin, random_hash
from devtools.emulator.status import StatusContext, get_progress
from devtools.emulator.texts import RemotionError
from devtools.emulator.uploads import progress_key
from devtools.emulator.validation import select_composition


class RoutinesMixin(StartMixin):
    """LambdaEmulator's status, still, info and compositions (see the module docstring)."""

    def _status(self, fn: FunctionConfig, payload: JSONDict) -> InvokeResult:
        with self._lock:
            delay_ms = self._faults.status_delay_ms
        if delay_ms:
            time.sleep(delay_ms / 1000)
        attempt = 0
        while True:
            attempt += 1
            with self._lock:
                now = time.monotonic()
                self._advance(now)
                result = self._status_once(fn, payload, now, attempt)
                retry_ms = self._faults.no_render_retry_ms
            if result is not None:
                return result
            time.sleep(retry_ms / 1000)  # handlers/progress.ts: 1000 ms, then try again

    def _status_once(
        self, fn: FunctionConfig, payload: JSONDict, now: float, attempt: int
    ) -> InvokeResult | None:
        faults = self._faults
        if attempt == 1:
            if faults.crash_status:  # fault injection
                faults.crash_status -= 1
                self._counters.crashes_total += 1
                return unhandled_error(
                    RemotionError("Emulated unhandled crash in status (crash_status)")
                )
            if faults.fail_status:  # fault injection: the status path never answers "handled"
                faults.fail_status -= 1
                return self._handled(
                    RemotionError("Emulated handled error in status (fail_status)")
                )
        try:
            self._check_version(fn, payload, "getRenderProgress()")
            render_id, bucket_name = str(payload.get("renderId")), str(payload.get("bucketName"))
            bucket = self._buckets.get(bucket_name)
            self._counters.internal_s3_calls["GetObject"] += 1
            if bucket is None:
                raise RemotionError("The specified bucket does not exist", "NoSuchBucket")
            obj = bucket.objects.get(progress_key(render_id))
            render = self._renders.get(render_id)
            hidden_s = faults.unreadable_progress_for_ms / 1000
            if hidden_s and render is not None and now - render.started_mono < hidden_s:
                obj = None  # fault injection: the read misses
            if obj is None:
                if faults.missing_progress_mode == "no-such-key":
                    raise RemotionError("The specified key does not exist.", "NoSuchKey")
                if attempt < NO_RENDER_ATTEMPTS:
                    return None
                raise texts.type_error(texts.no_render(render_id, bucket_name, self.region))
            if isinstance(obj, ProgressObject):
                doc = obj.snapshot.document()
            else:
                try:
                    doc = json.loads(obj.data())
                except ValueError as exc:
                    raise RemotionError(str(exc), "SyntaxError") from exc
            ctx = StatusContext(
                bucket=bucket_name,
                render_id=render_id,
                region=self.region,
                memory_mb=fn.memory_mb,
                timeout_ms=fn.timeout_ms,
                function_name=fn.name,
                now_ms=self._ms(now),
                grace_ms=round(faults.timeout_grace_s * 1000),
                find_output=self._output_size,
            )
            return success(get_progress(doc, ctx))
        except RemotionError as exc:
            self._counters.unhandled_errors_total += 1
            return unhandled_error(exc)

    def _output_size(self, bucket_name: str, key: str) -> int | None:
        self._counters.internal_s3_calls["HeadObject"] += 1
        bucket = self._buckets.get(bucket_name)
        obj = None if bucket is None else bucket.objects.get(key)
        return None if obj is None else obj.size

    # -- still, info, compositions ------------------------------------------------------------

    def _still(self, fn: FunctionConfig, payload: JSONDict) -> InvokeResult:
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            self._counters.still_calls += 1
            problem = texts.delete_after_error(payload.get("deleteAfter"))
            if problem is not None:  # inner-routine.ts validates before stillHandler's try
                return unhandled_error(problem)
            render_id = "-".join(
                str(part) for part in (payload.get("deleteAfter"), random_hash()) if part
            )
            try:
                self._check_version(fn, payload, "renderStillOnLambda()")
                for message in (
                    texts.download_behavior_error(payload.get("downloadBehavior")),
                    texts.privacy_error(payload.get("privacy")),
                ):
                    if message is not None:
                        raise RemotionError(message)
                bucket = str(payload.get("bucketName") or self._get_or_create_bucket(now))
                self._read_still_props(payload, bucket)
                serve_url = self._serve_url(payload.get("serveUrl"), bucket)
                comp = select_composition(self._faults.compositions, payload)
            except RemotionError as exc:
                return self._handled(exc)
            metadata = self._still_metadata(now, fn, payload, render_id, serve_url, comp)
            still = OverallProgress(fn.timeout_ms, self._ms(now), False)  # sic: not a timestamp
            still.render_metadata = metadata
            self._put_object(
                now,
                bucket,
                progress_key(render_id),
                ProgressObject(still.snapshot(self._ms(now))),
                "PutObject",
            )
            duration_s = self._faults.still_ms * self._scale(self._faults.speed) / 1000
        time.sleep(duration_s)
        with self._lock:
            end = time.monotonic()
            self._advance(end)
            out_bucket, key = bucket, f"renders/{render_id}/out.{payload.get('imageFormat')}"
            out_name = payload.get("outName")
            if isinstance(out_name, str) and out_name:
                key = f"renders/{render_id}/{out_name}"
            elif isinstance(out_name, dict) and isinstance(out_name.get("key"), str):
                out_bucket, key = str(out_name.get("bucketName") or bucket), out_name["key"]
            size = comp.width * comp.height // 8 + 1024
            privacy = payload.get("privacy")
            acl = (
                None
                if privacy == "no-acl"
                else ("private" if privacy == "private" else "public-read")
            )
            self._put_object(
                end,
                out_bucket,
                key,
                StoredObject(b"", media_type(key), self._ms(end), padding=size, acl=acl),
                "PutObject",
            )
            # handlers/still.ts: estimatePrice(now - start + 100 ms, current memory, 1 call)
            cost = aws.estimate_price(
                self.region, self._ms(end) - self._ms(now) + 100, fn.memory_mb, 1
            )
        return success(
            {
                "type": "success",
                "output": aws.output_url(self.region, out_bucket, key),
                "size": size,
                "sizeInBytes": size,
                "bucketName": bucket,
                "estimatedPrice": aws.format_costs_info(cost, self.region),
                "renderId": render_id,
                "outKey": key,
                "receivedArtifacts": [],
            }
        )

    def _read_still_props(self, payload: Mapping[str, Any], bucket: str) -> None:
        # compress-props.ts decompressInputProps, from the still's bucket
        serialized = payload.get("inputProps")
        if isinstance(serialized, dict) and serialized.get("type") == "bucket-url":
            _, data = self._get_object_internal(
                bucket, f"input-props/{serialized.get('hash')}.json"
            )
            if data is None:
                stack = texts.stack_of("NoSuchKey", "The specified key does not exist.")
                raise RemotionError(texts.input_props_unreadable(stack))

    def _still_metadata(
        self,
        now: float,
        fn: FunctionConfig,
        payload: Mapping[str, Any],
        render_id: str,
        serve_url: str,
        comp: Composition,
    ) -> JSONDict:
        scale = payload.get("scale") or 1
        metadata: JSONDict = {  # handlers/still.ts renderMetadata
            "startedDate": self._ms(now),
            "codec": None,
            "compositionId": payload.get("composition"),
            "estimatedTotalLambdaInvokations": 1,
            "estimatedRenderLambdaInvokations": 1,
            "siteId": serve_url,
            "totalChunks": 1,
            "type": "still",
            "imageFormat": payload.get("imageFormat"),
            "inputProps": payload.get("inputProps"),
            "lambdaVersion": self.remotion_version,
            "framesPerLambda": 1,
            "memorySizeInMb": fn.memory_mb,
            "region": self.region,
            "renderId": render_id,
        }
        if payload.get("outName") is not None:
            metadata["outName"] = payload.get("outName")
        metadata.update(
            {
                "privacy": payload.get("privacy"),
                "audioCodec": None,
                "deleteAfter": payload.get("deleteAfter"),
                "numberOfGifLoops": None,
                "downloadBehavior": payload.get("downloadBehavior"),
                "audioBitrate": None,
                "metadata": None,
                "functionName": fn.name,
                "rendererFunctionName": fn.name,
                "dimensions": {
                    "height": jsjson.num(comp.height * scale),
                    "width": jsjson.num(comp.width * scale),
                },
            }
        )
        return metadata

    def _info(self) -> InvokeResult:
        # serverless/src/info.ts: version first, no version check
        return success({"version": self.remotion_version, "type": "success"})

    def _compositions(self, fn: FunctionConfig, payload: JSONDict) -> InvokeResult:
        # serverless/src/handlers/compositions.ts (VideoConfig fields approximated)
        try:
            self._check_version(fn, payload, "getCompositionsOnLambda()")
        except RemotionError as exc:
            with self._lock:
                return self._handled(exc)
        with self._lock:
            comps = [
                {**c.as_json(), "defaultProps": {}, "props": {}, "defaultCodec": None}
                for c in self._faults.compositions
            ]
        return success({"compositions": comps, "type": "success"})
