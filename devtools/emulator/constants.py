"""The emulated deployment's fixed parameters, shared by several modules.

The Remotion version and AWS account the function pretends to run in, the defaults of the
settings the CLI and the control API can change, Remotion's own limits (each with the
Remotion file it comes from), and the JSON object alias every module uses. Texts Remotion
produces live in :mod:`devtools.emulator.texts`, prices and function names in
:mod:`devtools.emulator.aws`.
"""

from __future__ import annotations

from typing import Any, Final

REMOTION_VERSION: Final = "4.0.539"
"""The Remotion version the emulated function was "deployed" with (must equal the SDK's)."""

ACCOUNT_ID: Final = "123456789012"
DEFAULT_REGION: Final = "us-east-1"
DEFAULT_SPEED_FPS: Final = 100.0
"""Frames per second of wall time the renderers of one render produce together."""
REFERENCE_SPEED_FPS: Final = 100.0
"""At this speed the configured overheads (ms) apply as they are; at speed S they are scaled
by REFERENCE_SPEED_FPS / S, so tests at speed 3000 see them 30 times shorter."""
DEFAULT_TIMEOUT_GRACE_S: Final = 20.0
# serverless-client/src/progress.ts: "We add a 20 second buffer ... Once it's 20sec over the
# limit, we consider it timed out".

# lambda-client/src/constants.ts
DEFAULT_MEMORY_MB: Final = 2048
DEFAULT_DISK_MB: Final = 2048
DEFAULT_TIMEOUT_S: Final = 120
MAX_EPHEMERAL_STORAGE_IN_MB: Final = 10240
"""Price calculations always use this disk size (getEphemeralStorageForPriceCalculation)."""

# serverless-client/src/constants.ts
MAX_FUNCTIONS_PER_RENDER: Final = 200
MINIMUM_FRAMES_PER_FUNCTION: Final = 5
# serverless-client/src/most-expensive-chunks.ts
OVERHEAD_TIME_PER_LAMBDA: Final = 100
# serverless-client/src/compress-props.ts: MARGIN = 5000 + MAX_WEBHOOK_CUSTOM_DATA_SIZE
INLINE_PAYLOAD_LIMIT: Final = 200_000 - 5_000 - 1024
STILL_INLINE_PAYLOAD_LIMIT: Final = 5_000_000 - 5_000 - 1024
# serverless-client/src/constants.ts: expiryDays
DELETE_AFTER_VALUES: Final = ("1-day", "3-days", "7-days", "30-days")
# lambda-client/src/random-hash.ts
RANDOM_HASH_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz0123456789"
BUCKET_PREFIX: Final = "remotionlambda-"

# serverless/src/invoke-webhook.ts: AbortSignal.timeout(10000), retries = 2,
# exponentialBackoff(errors) = 1000 * 2 ** (errors - 1) -> 500 ms, then 1000 ms.
WEBHOOK_TIMEOUT_MS: Final = 10_000.0
WEBHOOK_BACKOFF_MS: Final = (500.0, 1000.0)
# serverless/src/cancellation-polling.ts: intervalInMilliseconds: 1000
CANCEL_POLL_MS: Final = 1000.0
# serverless/src/handlers/progress.ts: 1000 ms between "No render with ID" attempts,
# inner-routine.ts: retriesRemaining 2 -> three attempts.
NO_RENDER_RETRY_MS: Final = 1000.0
NO_RENDER_ATTEMPTS: Final = 3
# serverless/src/overall-render-progress.ts: wait(Math.max(0, 250 - elapsed)) between writes.
PROGRESS_UPLOAD_INTERVAL_MS: Final = 250.0
NEVER_FINISH_STALL_AT: Final = 0.99
DEFAULT_FATAL_MESSAGE: Final = "Emulated fatal render error"
DEFAULT_FLAKY_MESSAGE: Final = "socket hang up"
"""A chunk failure Remotion retries: is-flaky-error.ts lists "ECONNRESET" and "socket hang up"."""

JSONDict = dict[str, Any]
