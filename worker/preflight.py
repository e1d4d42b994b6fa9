"""Refuse to run a worker that cannot render.

A worker pointed at a function that does not exist, or that runs another Remotion version,
would otherwise take every render and fail it (``lambda_config`` / "Version mismatch"). Remotion
rejects any client of another version (``packages/serverless/src/handlers/
check-version-mismatch.ts``), so before a worker process takes its first message it checks the
configured function: first the version in its name, when the name follows Remotion's
convention (``remotion-render-4-0-539-mem2048mb-disk2048mb-120sec``,
``packages/lambda-client/src/speculate-function-name.ts``), then the function itself through its
``info`` routine. A function that cannot be reached right now (network, throttling) does not
stop the worker: renders wait and retry as usual. ``scripts.health`` runs the same check.
"""

from __future__ import annotations

import re

from dramatiq import Broker, Middleware

from shared.errors import RenderqError
from shared.log import get_logger
from shared.pools import Pool, PoolConfigError, configured_pools
from shared.settings import REMOTION_VERSION, Settings, get_settings
from worker.lambda_client import get_lambda
from worker.lambda_errors import LambdaConfigError, LambdaError

log = get_logger(__name__)

#: sysexits.h EX_CONFIG: the dramatiq master exits with its worker's code.
EXIT_CONFIG = 78

_NAME = re.compile(r"^remotion-render-(\d+)-(\d+)-(\d+)-mem\d+mb-disk\d+mb-\d+sec$")


class FunctionUnusable(RenderqError):
    """The configured Lambda function cannot render for this renderq."""


def version_in_name(function_name: str) -> str | None:
    match = _NAME.match(function_name.rsplit(":", 1)[-1])
    return ".".join(match.groups()) if match else None


def check_function(settings: Settings | None = None) -> str:
    """The Remotion version of every pool's function if they can render for renderq; raises
    ``FunctionUnusable`` (naming the pool, function and both versions) if one cannot, and lets
    ``LambdaError`` through when it cannot be asked right now."""
    for pool in configured_pools():
        version = _check_pool(pool)
    return version


def _check_pool(pool: Pool) -> str:
    name, region = pool.function_name, pool.region
    where = f"Lambda function {name} in {region} (pool {pool.name})"
    named = version_in_name(name)
    if named is not None and named != REMOTION_VERSION:
        raise FunctionUnusable(
            f"{where} is named for Remotion {named}, but renderq's Remotion "
            f"client is {REMOTION_VERSION}: the function would reject every render. Deploy a "
            f"{REMOTION_VERSION} function or set REMOTION_LAMBDA_FUNCTION_NAME to one."
        )
    try:
        deployed = get_lambda(pool.name).info()
    except LambdaConfigError as exc:
        raise FunctionUnusable(
            f"{where} cannot be used by renderq (Remotion {REMOTION_VERSION}): {exc}"
        ) from exc
    if deployed != REMOTION_VERSION:
        raise FunctionUnusable(
            f"{where} runs Remotion {deployed}, but renderq's "
            f"Remotion client is {REMOTION_VERSION}: the function would reject every render. "
            f"Deploy a {REMOTION_VERSION} function or set REMOTION_LAMBDA_FUNCTION_NAME to one."
        )
    return deployed


class Preflight(Middleware):
    """Runs ``check_function`` once per worker process, before it consumes anything."""

    def after_process_boot(self, broker: Broker) -> None:
        settings = get_settings()
        if not settings.lambda_preflight:
            return
        try:
            version = check_function(settings)
        except (FunctionUnusable, PoolConfigError) as exc:
            log.critical("worker refuses to start", reason=str(exc))
            raise SystemExit(EXIT_CONFIG) from exc
        except LambdaError as exc:
            log.warning("could not check the Lambda function at start-up", error=str(exc))
            return
        log.info(
            "lambda function checked",
            functions={p.name: p.function_name for p in configured_pools()},
            remotion_version=version,
        )
