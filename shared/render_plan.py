"""How a render is cut into Lambda functions, and whether it can fit the budget at all.

Each Remotion render occupies 1 orchestrator + one renderer per chunk of ``framesPerLambda``
frames. renderq passes ``framesPerLambda`` explicitly so its budget estimate is exactly what
Lambda runs. A render needing more functions than the largest pool's whole budget would wait
forever; it is cut coarser instead (fewer, longer renderers: Remotion allows any
``framesPerLambda`` >= 5, ``packages/serverless/src/validate-frames-per-function.ts``), up to
``MAX_FRAMES_PER_LAMBDA`` frames per renderer; beyond that it can never fit and is refused
with ``over_capacity`` (by the producer, and by the worker for foreign messages).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.errors import RenderqError
from shared.pools import largest_budget
from shared.settings import get_settings

#: Remotion's limits (``packages/serverless/src/validate-frames-per-function.ts`` and the
#: "Too many functions" check in ``launch.ts``).
MAX_CHUNKS = 200
MIN_FRAMES_PER_LAMBDA = 5


class OverCapacity(RenderqError, ValueError):
    """The render cannot fit the Lambda budget even cut as coarsely as allowed."""

    code = "over_capacity"


@dataclass(frozen=True, slots=True)
class Chunking:
    frames_per_lambda: int
    functions: int  # 1 orchestrator + renderers


def remotion_default_frames_per_lambda(frames: int) -> int:
    """Remotion's own default: 75..150 renderer functions over 0..18,000 frames, >= 20 frames
    each (``lambda-client`` ``best-frames-per-lambda``)."""
    concurrency = 75 + 75 * min(frames, 18_000) / 18_000
    per_function = max(frames / concurrency, 20)
    functions = math.ceil(frames / per_function)
    return max(math.ceil(frames / functions), min(MIN_FRAMES_PER_LAMBDA, frames))


def _functions(frames: int, fpl: int) -> int:
    return 1 + math.ceil(frames / fpl)


def chunking_for(frames: int, budget: int | None = None) -> Chunking:
    """The chunking a render of ``frames`` frames runs with, fitting ``budget`` functions
    (default: the largest pool's); raises ``OverCapacity`` when no allowed chunking fits."""
    settings = get_settings()
    budget = largest_budget() if budget is None else budget
    fpl = settings.frames_per_lambda or remotion_default_frames_per_lambda(frames)
    fpl = max(fpl, math.ceil(frames / MAX_CHUNKS), min(MIN_FRAMES_PER_LAMBDA, frames))
    if _functions(frames, fpl) <= budget:
        return Chunking(fpl, _functions(frames, fpl))
    renderers = budget - 1
    coarse = math.ceil(frames / renderers) if renderers >= 1 else frames + 1
    if renderers < 1 or coarse > settings.max_frames_per_lambda:
        raise OverCapacity(
            f"a render of {frames} frames needs at least "
            f"{_functions(frames, min(frames, settings.max_frames_per_lambda))} Lambda functions "
            f"(at most {settings.max_frames_per_lambda} frames per function, "
            f"MAX_FRAMES_PER_LAMBDA) but the largest Lambda pool has a budget of {budget}"
        )
    return Chunking(coarse, _functions(frames, coarse))
