"""The emulated deployment's fixed parameters, shared by several modules.

The Remotion version and AWS account the function pretends to run in, the defaults of the
settings the CLI and the control API can change, Remotion's planning limits, the default
composition, Lambda's memory size and prices, and the JSON object alias every module uses.
The private constants of one part (phase shares, HTTP paths, codec extensions, S3's XML
namespace) live with that part.
"""

from __future__ import annotations

from typing import Any, Final

REMOTION_VERSION: Final = "4.0.539"
"""The Remotion version the emulated function was "deployed" with (must equal the SDK's)."""

ACCOUNT_ID: Final = "123456789012"
DEFAULT_SPEED_FPS: Final = 100.0
DEFAULT_FUNCTION_TIMEOUT_S: Final = 120.0
DEFAULT_TIMEOUT_GRACE_S: Final = 20.0
"""Remotion only declares a render timed out 20 s after the function timeout (AWS clock skew)."""

MAX_FUNCTIONS_PER_RENDER: Final = 200
MINIMUM_FRAMES_PER_FUNCTION: Final = 5
DEFAULT_DURATION_IN_FRAMES: Final = 300
DEFAULT_FPS: Final = 30
DEFAULT_WIDTH: Final = 1920
DEFAULT_HEIGHT: Final = 1080
MEMORY_SIZE_MB: Final = 2048
PRICE_PER_GB_SECOND: Final = 0.0000133334
"""arm64 Lambda price in us-east-1; Remotion deploys arm64 functions."""
PRICE_PER_INVOCATION: Final = 0.0000002
COST_DISCLAIMER: Final = "Estimated cost only. Does not include charges for other AWS services."
NEVER_FINISH_STALL_AT: Final = 0.99
DEFAULT_FATAL_MESSAGE: Final = "Emulated fatal render error"

JSONDict = dict[str, Any]
