"""Render limits: the one place that decides what a render may cost.

The seed product capped renders at 1080p and 20 s. Every limit is a setting so a deployment can
change it, and every violation names the limit, the value and the setting, because the person
reading the error is usually a developer of another service who has never seen this code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from shared import callbacks
from shared.errors import RenderqError
from shared.render_request import RenderRequest
from shared.settings import Settings, get_settings

#: Codecs whose encoder needs even frame dimensions (yuv420p chroma subsampling).
EVEN_DIMENSION_CODECS = frozenset({"h264", "h265"})


@dataclass(frozen=True)
class Violation:
    field: str
    value: object
    limit: str

    def __str__(self) -> str:
        return f"{self.field}={self.value!r} {self.limit}"


class RenderLimitExceeded(RenderqError, ValueError):
    """A structurally valid request that breaks a configured render limit."""

    code = "limit_exceeded"

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__("render limits exceeded: " + "; ".join(map(str, violations)))


@dataclass(frozen=True)
class RenderLimits:
    """The limits of one deployment; the defaults are the settings' (``Settings``)."""

    max_long_side: int
    max_short_side: int
    max_duration_s: float
    min_fps: int
    max_fps: int
    max_input_props_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> RenderLimits:
        s = settings or get_settings()
        return cls(
            max_long_side=s.max_long_side,
            max_short_side=s.max_short_side,
            max_duration_s=s.max_duration_s,
            min_fps=s.min_fps,
            max_fps=s.max_fps,
            max_input_props_bytes=s.max_input_props_bytes,
        )

    def violations(self, request: RenderRequest) -> list[Violation]:
        found: list[Violation] = []
        long_side, short_side = (
            max(request.width, request.height),
            min(request.width, request.height),
        )
        if long_side > self.max_long_side:
            field = "width" if request.width >= request.height else "height"
            found.append(
                Violation(
                    field,
                    long_side,
                    f"exceeds the maximum long side of {self.max_long_side}px (MAX_LONG_SIDE)",
                )
            )
        if short_side > self.max_short_side:
            field = "height" if request.width >= request.height else "width"
            found.append(
                Violation(
                    field,
                    short_side,
                    f"exceeds the maximum short side of {self.max_short_side}px "
                    f"(MAX_SHORT_SIDE; {self.max_long_side}x{self.max_short_side} is the largest "
                    "frame)",
                )
            )
        if request.codec in EVEN_DIMENSION_CODECS:
            for field, value in (("width", request.width), ("height", request.height)):
                if value % 2:
                    found.append(Violation(field, value, f"must be even for codec {request.codec}"))
        if not self.min_fps <= request.fps <= self.max_fps:
            found.append(
                Violation(
                    "fps",
                    request.fps,
                    f"is outside {self.min_fps}..{self.max_fps} (MIN_FPS/MAX_FPS)",
                )
            )
        # Compare in frames, not float seconds: 600 frames at 30 fps is exactly 20 s and passes.
        if request.duration_in_frames > self.max_duration_s * request.fps:
            seconds = request.duration_in_frames / request.fps
            found.append(
                Violation(
                    "duration_in_frames",
                    request.duration_in_frames,
                    f"is {seconds:.3f}s at {request.fps} fps, over the maximum of "
                    f"{self.max_duration_s:g}s (MAX_DURATION_S)",
                )
            )
        props_bytes = len(
            json.dumps(request.input_props, separators=(",", ":"), ensure_ascii=False).encode()
        )
        if props_bytes > self.max_input_props_bytes:
            found.append(
                Violation(
                    "input_props",
                    f"{props_bytes} bytes",
                    f"exceeds the maximum of {self.max_input_props_bytes} bytes "
                    "(MAX_INPUT_PROPS_BYTES)",
                )
            )
        if request.callback_url is not None:
            refused = callbacks.check_syntax(request.callback_url)
            if refused is not None:
                found.append(Violation("callback_url", request.callback_url, refused))
        return found

    def enforce(self, request: RenderRequest) -> None:
        found = self.violations(request)
        if found:
            raise RenderLimitExceeded(found)
