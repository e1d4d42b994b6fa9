"""The emulated Remotion site: which compositions its bundle registers.

Remotion's ``launch`` opens the serve URL and asks the bundle for the composition
(``serverless/src/validate-composition.ts`` -> ``RenderInternals.internalSelectComposition``);
an id the bundle does not register fails there, after the start has returned. The emulator
cannot run a bundle, so the site is a configurable list of :class:`Composition` objects
(the ``compositions`` knob); every serve URL shows the same site. The defaults cover every
composition name renderq's tests, demo and benchmark use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from devtools.emulator.constants import JSONDict


@dataclass(frozen=True, slots=True)
class Composition:
    """What ``<Composition />`` declares (the caller's ``force*`` values override these)."""

    id: str
    width: int = 1920
    height: int = 1080
    fps: int = 30
    duration_in_frames: int = 300

    def as_json(self) -> JSONDict:
        return {
            "id": self.id,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "durationInFrames": self.duration_in_frames,
        }


DEFAULT_COMPOSITIONS: Final = tuple(
    Composition(name)
    for name in ("Main", "Intro", "Recap", "Story", "Teaser", "Broken", "Bench", "Fine", "Long")
)


_DEFAULTS: Final = {"width": 1920, "height": 1080, "fps": 30, "duration_in_frames": 300}


def parse_compositions(key: str, value: object) -> tuple[Composition, ...]:
    """A list of ids, or of objects ``{id, width, height, fps, durationInFrames}``."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key} must be a non-empty list")
    out = []
    for index, raw in enumerate(value):
        if isinstance(raw, str) and raw:
            out.append(Composition(raw))
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            raise ValueError(f"{key}[{index}] must be a name or an object with an id")
        numbers = {}
        for field_name, json_name in (
            ("width", "width"),
            ("height", "height"),
            ("fps", "fps"),
            ("duration_in_frames", "durationInFrames"),
        ):
            number = raw.get(json_name, _DEFAULTS[field_name])
            if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
                raise ValueError(f"{key}[{index}].{json_name} must be a positive integer")
            numbers[field_name] = number
        unknown = set(raw) - {"id", "width", "height", "fps", "durationInFrames"}
        if unknown:
            raise ValueError(f"{key}[{index}]: unknown keys {sorted(unknown)}")
        out.append(Composition(raw["id"], **numbers))
    return tuple(out)
