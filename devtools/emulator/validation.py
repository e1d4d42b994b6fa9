"""What ``launch`` validates, and the render plan that comes out of it.

Remotion's start checks almost nothing; ``serverless/src/handlers/launch.ts`` checks the
payload after the start has returned, so every failure here becomes a fatal ``stitcher``
error in progress.json. The checks run in launch.ts's order, with the texts of the files
they follow: the composition (``validate-composition.ts``, ``remotion`` validate-dimensions
/ validate-duration-in-frames / validate-fps), bitrates (``renderer/src/validate-
videobitrate.ts``), ``concurrencyPerLambda`` (``renderer`` validateConcurrency), the frame
range (``renderer/src/frame-range.ts``, ``get-frame-to-render.ts``), ``everyNthFrame``,
``framesPerLambda``/``concurrency`` (``serverless-client/src/validate-frames-per-
function.ts``, ``best-frames-per-function-param.ts``), the S3 key (``validate-outname.ts``),
privacy (``validate-privacy.ts``), ``timeoutInMilliseconds`` (``renderer/src/validate-
puppeteer-timeout.ts``), ``planFrameRanges`` (``plan-frame-ranges.ts``) and "Too many
functions". Not modelled: codec/extension pairing and ``separateAudioTo`` audio codecs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from devtools.emulator import jsjson, texts
from devtools.emulator.constants import MAX_FUNCTIONS_PER_RENDER, MINIMUM_FRAMES_PER_FUNCTION
from devtools.emulator.site import Composition
from devtools.emulator.texts import RemotionError, type_error

_S3_KEY: Final = re.compile(r"^([0-9a-zA-Z\-!_.*'()/:&$@=;+,?]+)")
AUDIO_CODECS: Final = frozenset({"mp3", "aac", "wav"})


@dataclass(frozen=True, slots=True)
class Plan:
    """A validated render: what ``launch`` knows once ``planFrameRanges`` has run."""

    composition: Composition
    frame_range: tuple[int, int]
    every_nth: int
    frame_count: int
    frames_per_lambda: int
    chunk_ranges: tuple[tuple[int, int], ...]
    chunk_frames: tuple[int, ...]
    direct: bool
    """``concurrency: 1`` without a renderer function: rendered by the launch function."""

    @property
    def chunks(self) -> int:
        return len(self.chunk_ranges)

    @property
    def functions(self) -> int:
        # renderMetadata.estimatedTotalLambdaInvokations: the renderers plus "this function".
        return (0 if self.direct else self.chunks) + 1


def _js_typeof(value: object) -> str:
    if value is None:
        return "object"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_before_browser(payload: Mapping[str, Any]) -> None:
    """launch.ts >= 4.0.535, before anything else: the separateAudioTo checks it can make
    without knowing the composition."""
    separate = payload.get("separateAudioTo")
    if separate is None:
        return
    codec = payload.get("codec")
    if codec is None:
        raise RemotionError("`separateAudioTo` cannot be used with image sequence renders.")
    if codec in AUDIO_CODECS:
        raise RemotionError(
            "`separateAudioTo` was set, but this render was audio-only. This option is meant "
            "to be used for video renders."
        )
    if payload.get("muted"):
        raise RemotionError(
            "`separateAudioTo` requires audio output. Audio output is disabled by the muted "
            "option or selected codec."
        )


def _dimension(value: object, prop: str, location: str) -> int:
    # remotion/src/validation/validate-dimensions.ts
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RemotionError(
            f'The "{prop}" prop {location} must be a number, but you passed a value of type '
            f"{_js_typeof(value)}"
        )
    if value % 1 != 0:
        raise type_error(f'The "{prop}" prop {location} must be an integer, but is {value}.')
    if value <= 0:
        raise type_error(f'The "{prop}" prop {location} must be positive, but got {value}.')
    return int(value)


def _duration(value: object, location: str) -> int:
    # remotion/src/validation/validate-duration-in-frames.ts
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RemotionError(
            f'The "durationInFrames" prop {location} must be a number, but you passed a value '
            f"of type {_js_typeof(value)}"
        )
    if value <= 0:
        raise type_error(
            f'The "durationInFrames" prop {location} must be positive, but got {value}.'
        )
    if value % 1 != 0:
        raise type_error(
            f'The "durationInFrames" prop {location} must be an integer, but got {value}.'
        )
    return int(value)


def _fps(value: object, location: str) -> int | float:
    # remotion/src/validation/validate-fps.ts
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RemotionError(
            f'"fps" must be a number, but you passed a value of type {_js_typeof(value)} {location}'
        )
    if value <= 0:
        raise type_error(f'"fps" must be positive, but got {value} {location}')
    return value


def select_composition(
    compositions: Sequence[Composition], payload: Mapping[str, Any]
) -> Composition:
    """validate-composition.ts: find the id in the bundle, then apply force* and validate."""
    wanted = payload.get("composition")
    found = next((c for c in compositions if c.id == wanted), None)
    if found is None:
        raise texts.composition_not_found(str(wanted), [c.id for c in compositions])
    location = f'of the "<Composition />" component with the id "{found.id}"'

    def forced(key: str, default: int) -> object:
        value = payload.get(key)
        return default if value is None else value

    duration = _duration(forced("forceDurationInFrames", found.duration_in_frames), location)
    fps = _fps(forced("forceFps", found.fps), location)
    height = _dimension(forced("forceHeight", found.height), "height", location)
    width = _dimension(forced("forceWidth", found.width), "width", location)
    return Composition(found.id, width, height, int(fps), duration)


def _bitrate(value: object, name: str) -> None:
    # renderer/src/validate-videobitrate.ts
    if value is None:
        return
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise RemotionError(
            f'"{name}" must be a string ending in "K" or "M". Got a number: {value}'
        )
    if not isinstance(value, str):
        raise RemotionError(f'"{name}" must be a string or null, but got {jsjson.dumps(value)}')
    if not (value.endswith(("K", "k", "M"))):
        raise RemotionError(f'"{name}" must end in "K", "k" or "M", but got {jsjson.dumps(value)}')


def _concurrency_per_lambda(value: object, memory_mb: int, check_cores: bool) -> None:
    # renderer/src/validate-concurrency.ts (cores: Lambda gives ~1 vCPU per 1769 MB).
    if value is None or isinstance(value, str):
        return
    if not _is_int(value):
        raise RemotionError(f"concurrencyPerLambda must be an integer, but is {value}")
    assert isinstance(value, int)
    cores = max(1, math.ceil(memory_mb / 1769))
    if check_cores and value > cores:
        raise RemotionError(
            "concurrencyPerLambda is set higher than the amount of CPU cores available. "
            f"Available CPU cores: {cores}, value set: {value}"
        )


def real_frame_range(duration: int, frame_range: object) -> tuple[int, int]:
    """renderer/src/frame-range.ts validateFrameRange + get-frame-to-render.ts getRealFrameRange."""
    if frame_range is None:
        return 0, duration - 1
    if isinstance(frame_range, int | float) and not isinstance(frame_range, bool):
        if frame_range < 0 or frame_range >= duration:
            raise RemotionError(
                f"Frame number is out of range, must be between 0 and {duration - 1} but got "
                f"{jsjson.js_number(float(frame_range))}"
            )
        return int(frame_range), int(frame_range)
    if not isinstance(frame_range, list):
        raise type_error(
            "Frame range must be a number or a tuple of numbers, but got object of type "
            + _js_typeof(frame_range)
        )
    if len(frame_range) != 2:
        raise type_error(
            f"Frame range must be a tuple, got an array with length {len(frame_range)}"
        )
    for ordinal, value in zip(("first", "second"), frame_range, strict=True):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise type_error(
                f"The {ordinal} value of frame range must be a number, but got "
                f"{_js_typeof(value)} ({jsjson.dumps(value)})"
            )
        if value % 1 != 0:
            raise type_error(
                f"The {ordinal} value of frame range must be an integer, but got a float ({value})"
            )
        if value < 0:
            raise type_error(
                f"The {ordinal} value of frame range must be non-negative, but got {value}"
            )
    first, last = int(frame_range[0]), int(frame_range[1])
    if last < first:
        raise type_error(
            "The second value of frame range must be not smaller than the first one, but got "
            f"{first}-{last}"
        )
    if last >= duration or first < 0:
        raise RemotionError(
            f'The "durationInFrames" of the <Composition /> was evaluated to be {duration}, but '
            f"frame range {first}-{last} is not inbetween 0-{duration - 1}"
        )
    return first, last


def best_frames_per_function(frame_count: int) -> int:
    """serverless/src/best-frames-per-function-param.ts (interpolate 75..150 over 0..18000)."""
    concurrency = 75 + 75 * min(max(frame_count, 0), 18000) / 18000
    frames_per_function = max(frame_count / concurrency, 20)
    functions_needed = math.ceil(frame_count / frames_per_function)
    return math.ceil(frame_count / functions_needed)


def frames_per_function(payload: Mapping[str, Any], frame_count: int) -> int:
    """serverless-client/src/validate-frames-per-function.ts, messages and order included."""
    value = payload.get("framesPerFunction", payload.get("framesPerLambda"))
    concurrency = payload.get("concurrency")
    minimum = min(MINIMUM_FRAMES_PER_FUNCTION, frame_count)
    if value is not None and concurrency is not None:
        raise type_error(
            "Both 'framesPerLambda' and 'concurrency' were set. Please use only one of them."
        )
    if concurrency is not None:
        if not isinstance(concurrency, int | float) or isinstance(concurrency, bool):
            raise type_error(
                f"'concurrency' needs to be a number, passed {jsjson.dumps(concurrency)}"
            )
        if concurrency % 1 != 0:
            raise type_error(f"'concurrency' needs to be an integer, passed {concurrency}")
        if concurrency <= 0:
            raise type_error(f"'concurrency' needs to be positive, passed {concurrency}")
        if concurrency > MAX_FUNCTIONS_PER_RENDER:
            raise type_error(
                f"'concurrency' cannot exceed {MAX_FUNCTIONS_PER_RENDER}, passed {concurrency}"
            )
        return max(math.ceil(frame_count / concurrency), minimum)
    if value is None:
        return max(best_frames_per_function(frame_count), minimum)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise type_error(f"'framesPerLambda' needs to be a number, passed {jsjson.dumps(value)}")
    if value % 1 != 0:
        raise type_error(f"'framesPerLambda' needs to be an integer, passed {value}")
    if value < minimum:
        raise type_error(f"The framesPerLambda needs to be at least {minimum}, but is {value}")
    return int(value)


def _out_name(value: object) -> None:
    # serverless-client/src/validate-outname.ts (validateS3Key for a string outName)
    if value is None:
        return
    if isinstance(value, dict):
        key = value.get("key")
        if not isinstance(key, str):
            raise RemotionError(
                f"The S3 key must be a string. Passed an object of type {_js_typeof(key)}"
            )
        value = key
    if not isinstance(value, str):
        raise RemotionError(
            f"The S3 key must be a string. Passed an object of type {_js_typeof(value)}"
        )
    if _S3_KEY.match(value) is None:
        raise RemotionError(
            "The S3 Key must match the RegExp `/^([0-9a-zA-Z-!_.*'()/:&$@=;+,?]+)/g`. You passed: "
            f"{value}. Check for invalid characters."
        )


def _timeout(value: object) -> None:
    # renderer/src/validate-puppeteer-timeout.ts
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RemotionError(
            f"'timeoutInMilliseconds' should be a number, but is: {jsjson.dumps(value)}"
        )
    if value < 7000:
        raise RemotionError(
            f"'timeoutInMilliseconds' should be bigger or equal than 7000, but is {value}"
        )
    if value % 1 != 0:
        raise RemotionError(f"'timeoutInMilliseconds' should be an integer, but is {value}")


def plan_frame_ranges(
    frames_per_lambda: int, frame_range: tuple[int, int], every_nth: int
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """serverless/src/plan-frame-ranges.ts, and how many frames each chunk renders."""
    first, last = frame_range
    frame_count = (last - first) // every_nth + 1
    chunk_count = math.ceil(frame_count / frames_per_lambda)
    ranges = []
    counts = []
    for i in range(chunk_count):
        start = i * frames_per_lambda * every_nth + first
        end = min(last, (i + 1) * frames_per_lambda * every_nth - 1 + first)
        ranges.append((start, end))
        counts.append((end - start) // every_nth + 1)
    return tuple(ranges), tuple(counts)


def plan_render(payload: Mapping[str, Any], composition: Composition, memory_mb: int) -> Plan:
    """Everything launch.ts checks between setCompositionValidated and setRenderMetadata
    (except the existing-output check, which needs S3)."""
    _bitrate(payload.get("audioBitrate"), "audioBitrate")
    _bitrate(payload.get("videoBitrate"), "videoBitrate")
    renderer = payload.get("rendererFunctionName")
    _concurrency_per_lambda(
        payload.get("concurrencyPerFunction", payload.get("concurrencyPerLambda")),
        memory_mb,
        renderer is None,
    )
    frame_range = real_frame_range(composition.duration_in_frames, payload.get("frameRange"))
    every_nth = payload.get("everyNthFrame", 1)
    if not _is_int(every_nth) or every_nth < 1:
        raise RemotionError("everyNthFrame must be a positive integer")
    if payload.get("codec") is None and (payload.get("output") or {}).get("type") != "sequence":
        raise RemotionError("Media renders require a codec")
    frame_count = (frame_range[1] - frame_range[0]) // every_nth + 1
    fpl = frames_per_function(payload, frame_count)
    _out_name(payload.get("outName"))
    privacy_problem = texts.privacy_error(payload.get("privacy"))
    if privacy_problem is not None:
        raise RemotionError(privacy_problem)
    _timeout(payload.get("timeoutInMilliseconds", 30000))
    ranges, counts = plan_frame_ranges(fpl, frame_range, every_nth)
    if len(ranges) > MAX_FUNCTIONS_PER_RENDER:
        raise RemotionError(texts.too_many_functions(len(ranges), frame_count, fpl))
    direct = payload.get("concurrency") == 1 and renderer is None
    return Plan(composition, frame_range, every_nth, frame_count, fpl, ranges, counts, direct)
