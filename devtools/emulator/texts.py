"""The exact texts Remotion's function produces, each beside the Remotion file it is from.

Every error the emulator reports as Remotion would is built here, so a test can compare a
message with Remotion's own wording. :class:`RemotionError` carries a JavaScript error's
``name``, ``message`` and ``stack``; :func:`stack_of` builds the stack the way V8 prints it
("<name>: <message>" and one ``at`` line per frame).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from devtools.emulator import jsjson
from devtools.emulator.constants import DELETE_AFTER_VALUES, MAX_FUNCTIONS_PER_RENDER

DOCS_URL = "https://remotion.dev"  # serverless-client/src/docs-url.ts (no "www")


def stack_of(name: str, message: str, *frames: str) -> str:
    lines = [f"{name}: {message}" if message else name]
    lines += [f"    at {frame}" for frame in frames or ("<anonymous> (/var/task/index.js)",)]
    return "\n".join(lines)


class RemotionError(Exception):
    """A JavaScript error as the function sees it: ``err.name``, ``err.message``, ``err.stack``."""

    def __init__(self, message: str, name: str = "Error", stack: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.stack = stack or stack_of(name, message)

    def __str__(self) -> str:
        return self.message


def type_error(message: str) -> RemotionError:
    return RemotionError(message, "TypeError")


# -- version check: serverless/src/handlers/check-version-mismatch.ts ------------------


def version_mismatch(api: str, function_name: str, deployed: str, payload: object) -> str:
    version = payload.get("version") if isinstance(payload, dict) else None
    if not version:
        return (
            f"Version mismatch: When calling {api}, you called the function {function_name} "
            f"which has the version {deployed} but the @remotion/lambda package sent an "
            f"incompatible payload: {jsjson.dumps(payload)}. Expected it to contain "
            f"{{version: {deployed}}}"
        )
    return (
        f"Version mismatch: When calling {api}, you passed {function_name} as the function, "
        f"which has the version {deployed}, but the @remotion/lambda package you used to "
        f"invoke the function has version {version}. Deploy a new function and use it to call "
        "getRenderProgress(). See: https://www.remotion.dev/docs/lambda/upgrading"
    )


# -- start: lambda-client/src/aws-provider.ts, get-or-create-bucket.ts ------------------


def delete_after_error(value: object) -> RemotionError | None:
    """``validateDeleteAfter``: null/undefined allowed, else one of the four values."""
    if value is None:
        return None
    if not isinstance(value, str):
        return type_error(f"Expected life cycle value to be a string, got {jsjson.dumps(value)}")
    if value not in DELETE_AFTER_VALUES:
        return type_error(
            f"Expected deleteAfter value to be one of {', '.join(DELETE_AFTER_VALUES)}, got {value}"
        )
    return None


def multiple_buckets(names: Sequence[str], region: str) -> str:
    # serverless-client/src/get-or-create-bucket.ts: `${names}` is Array#toString (",").
    return (
        f"You have multiple buckets ({','.join(names)}) in your S3 region ({region}) starting "
        'with "remotionlambda-". Please see https://remotion.dev/docs/lambda/multiple-buckets.'
    )


def local_serve_url(url: str) -> str:
    # lambda-client/src/convert-to-serve-url.ts
    return (
        "Remotion Lambda can only render based on a URL in the cloud. It seems like you passed "
        f"a local file: {url}. Read the setup guide for Remotion Lambda "
        f"{DOCS_URL}/docs/lambda/setup"
    )


# -- launch validation -----------------------------------------------------------------


def composition_not_found(composition: str, available: Sequence[str]) -> RemotionError:
    # studio/src/renderEntry.tsx throws it in the page; renderer/src/puppeteer-evaluate.ts
    # makes the message the first line of the exception description, so it starts "Error: ".
    text = (
        f"Could not find composition with ID {composition}. Available compositions: "
        f"{', '.join(available)}"
    )
    return RemotionError(
        f"Error: {text}",
        "Error",
        stack_of(
            "Error", text, "window.remotion_calculateComposition (http://localhost/bundle.js)"
        ),
    )


def input_props_unreadable(s3_stack: str) -> str:
    # serverless-client/src/compress-props.ts decompressInputProps
    return f"Failed to parse input props that were serialized: {s3_stack}"


def too_many_functions(chunks: int, frame_count: int, frames_per_lambda: int) -> str:
    # serverless/src/handlers/launch.ts
    return (
        f"Too many functions: This render would cause {chunks} functions to spawn. We limit "
        f"this amount to {MAX_FUNCTIONS_PER_RENDER} functions as more would result in "
        f"diminishing returns. Values set: frameCount = {frame_count}, "
        f"framesPerLambda={frames_per_lambda}. See {DOCS_URL}/docs/lambda/concurrency"
        "#too-many-functions for help."
    )


def output_exists(key: str, bucket: str, region: str) -> str:
    # serverless/src/handlers/launch.ts (>= 4.0.535: no stray quote at the end)
    return (
        f'Output file "{key}" in bucket "{bucket}" in region "{region}" already exists. '
        "Delete it before re-rendering, or set the 'overwrite' option in "
        "renderMediaOnLambda() to overwrite it."
    )


def concurrency_limit_reached(original: str = "Rate Exceeded.") -> str:
    # lambda-client/src/call-lambda-streaming.ts
    return (
        f"AWS Concurrency limit reached (Original Error: {original}). See "
        "https://www.remotion.dev/docs/lambda/troubleshooting/rate-limit for tips to fix this."
    )


CANCELLED_RENDER_MEDIA = "renderMedia() got cancelled"
"""renderer/src/make-cancel-signal.ts cancelErrorMessages.renderMedia"""


# -- status: serverless-client/src/get-overall-progress-from-storage.ts, progress.ts -----


def no_render(render_id: str, bucket: str, region: str) -> str:
    return f'No render with ID "{render_id}" found in bucket {bucket} and region {region}'


STILL_PROGRESS = (
    "You don't need to call getRenderProgress() on a still render. Once you have obtained "
    "the `renderId`, the render is already done! \U0001f609"
)
NO_METADATA_BUT_FINISHED = "No render metadata found even though render is finished"


def command_not_found(payload: object) -> str:
    # serverless/src/inner-routine.ts: `${COMMAND_NOT_FOUND}: ${JSON.stringify(params)}`
    return f"Command not found: {jsjson.dumps(payload)}"


# -- webhooks: serverless/src/invoke-webhook.ts ------------------------------------------


def webhook_status(url: str, status: int) -> str:
    return f"Failed to send webhook to {url}, got status code {status}"


WEBHOOK_TIMEOUT = "The operation was aborted due to timeout"
"""What AbortSignal.timeout(10000) rejects fetch() with (name TimeoutError)."""


# -- still: serverless/src/validate-download-behavior.ts, validate-privacy.ts ------------


def download_behavior_error(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return "downloadBehavior must be null or an object"
    if value.get("type") not in ("download", "play-in-browser"):
        return 'Download behavior must be either "download" or "play-in-browser"'
    if value.get("type") == "download":
        name = value.get("fileName")
        if name is not None and not isinstance(name, str):
            return (
                'If "downloadBehavior.type" is "download", then fileName must be "null" or a string'
            )
    return None


def privacy_error(value: object) -> str | None:
    if not isinstance(value, str):
        return "Privacy must be a string"
    if value not in ("private", "public", "no-acl"):
        return 'Privacy must be either "private", "public" or "no-acl"'
    return None


def json_repr(value: object) -> str:
    """``JSON.stringify`` of a payload value, for messages that quote one."""
    try:
        return jsjson.dumps(value)
    except TypeError:
        return json.dumps(str(value))
