"""AWS facts the function depends on: regions, prices, function names, URLs.

Each piece follows a Remotion file, named where it is defined: the region list and its
partition (``lambda-client/src/regions.ts``, ``aws-region-metadata.ts``), the price table
(``price-per-1s.ts``) and ``estimatePrice`` (``estimate-price.ts``), the two cost formats
(``serverless-client/src/format-costs-info.ts`` for progress, ``serverless/src/
create-post-render-data.ts`` after a render), function-name parsing
(``lambda-client/src/parse-function-name.ts``, ``speculate-function-name.ts``), the output
URL (``get-output-url-from-metadata.ts``) and the CloudWatch URLs (``get-aws-urls.ts``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

from devtools.emulator import jsjson
from devtools.emulator.constants import (
    DEFAULT_DISK_MB,
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    MAX_EPHEMERAL_STORAGE_IN_MB,
    JSONDict,
)

# lambda-client/src/regions.ts AWS_REGIONS; the China regions come last (aws-region-metadata.ts
# lists them; their position in AWS_REGIONS is not verified for 4.0.539).
AWS_REGIONS: Final = (
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-north-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-south-1",
    "ap-east-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ca-central-1",
    "sa-east-1",
    "cn-north-1",
    "cn-northwest-1",
)

# lambda-client/src/price-per-1s.ts: (Lambda Requests, Lambda Duration-ARM per GB-s,
# Lambda Storage-Duration-ARM per GB-s), USD or (cn-*) CNY.
_STANDARD: Final = (0.0000002, 0.0000133334)
PRICES: Final[dict[str, tuple[float, float, float]]] = {
    "us-east-1": (*_STANDARD, 0.0000000309),
    "us-east-2": (*_STANDARD, 0.0000000309),
    "us-west-2": (*_STANDARD, 0.0000000309),
    "us-west-1": (*_STANDARD, 0.000000037),
    "eu-central-1": (*_STANDARD, 0.0000000367),
    "eu-central-2": (0.00000022, 0.0000146667, 0.0000000441),
    "eu-west-1": (*_STANDARD, 0.000000034),
    "eu-west-2": (*_STANDARD, 0.0000000358),
    "eu-west-3": (*_STANDARD, 0.0000000358),
    "eu-south-1": (0.00000023, 0.0000156138, 0.0000000357),
    "eu-north-1": (*_STANDARD, 0.0000000323),
    "ap-south-1": (*_STANDARD, 0.0000000352),
    "ap-northeast-2": (*_STANDARD, 0.0000000352),
    "ap-northeast-1": (*_STANDARD, 0.000000037),
    "ap-northeast-3": (*_STANDARD, 0.000000037),
    "ap-southeast-1": (*_STANDARD, 0.000000037),
    "ap-southeast-2": (*_STANDARD, 0.000000037),
    "ap-southeast-4": (*_STANDARD, 0.000000037),
    "ap-southeast-5": (0.00000018, 0.000012, 0.0000000333),
    "ap-east-1": (0.00000028, 0.0000183, 0.0000000407),
    "af-south-1": (0.00000027, 0.00001768, 0.0000000404),
    "ca-central-1": (*_STANDARD, 0.000000034),
    "sa-east-1": (*_STANDARD, 0.0000000586),
    "cn-north-1": (0.00000136, 0.0000908, 0.0000002303),
    "cn-northwest-1": (0.00000136, 0.0000908, 0.0000002049),
}
MIN_EPHEMERAL_STORAGE_IN_MB: Final = 512

# lambda-client/src/parse-function-name.ts
_FUNCTION_NAME: Final = re.compile(r"remotion-render-(.*)-mem(\d+)mb-disk(\d+)mb-(\d+)sec$")


def is_china(region: str) -> bool:
    # aws-region-metadata.ts: cn-north-1 and cn-northwest-1 are the aws-cn partition.
    return region.startswith("cn-")


def currency(region: str) -> str:
    return "CNY" if is_china(region) else "USD"


def dns_suffix(region: str) -> str:
    return "amazonaws.com.cn" if is_china(region) else "amazonaws.com"


def validate_region(region: str) -> None:
    # lambda-client/src/validate-aws-region.ts
    if region not in AWS_REGIONS:
        raise ValueError(
            f"{region} is not a supported AWS region. Must be one of: {', '.join(AWS_REGIONS)}"
        )


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """One deployed function: what ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` and the timeout say."""

    name: str
    memory_mb: int
    disk_mb: int
    timeout_s: float
    version: str | None

    @property
    def timeout_ms(self) -> int:
        return round(self.timeout_s * 1000)


def parse_function_name(name: str) -> tuple[str, int, int, int] | None:
    """``parseFunctionName``: (version, memory, disk, timeout in s), or None."""
    match = _FUNCTION_NAME.search(name)
    if match is None or not name.startswith("remotion-render-"):
        return None
    return match.group(1), int(match.group(2)), int(match.group(3)), int(match.group(4))


def speculate_function_name(version: str, memory_mb: int, disk_mb: int, timeout_s: int) -> str:
    """``speculateFunctionName`` (lambda-version-string.ts: dots and pluses to dashes, 10 chars)."""
    for label, value in (
        ("Memory size", memory_mb),
        ("Disk size", disk_mb),
        ("Timeout", timeout_s),
    ):
        if value <= 0:
            raise ValueError(f"{label} must be a positive integer. Received: {value}")
    short = version.replace(".", "-").replace("+", "-")[:10]
    return f"remotion-render-{short}-mem{memory_mb}mb-disk{disk_mb}mb-{timeout_s}sec"


def function_config(name: str, timeout_override_s: float | None = None) -> FunctionConfig:
    """The configuration a function of this name has; defaults for names that do not parse."""
    parsed = parse_function_name(name)
    if parsed is None:
        memory, disk, timeout, version = (
            DEFAULT_MEMORY_MB,
            DEFAULT_DISK_MB,
            float(DEFAULT_TIMEOUT_S),
            None,
        )
    else:
        version, memory, disk, timeout_int = parsed
        timeout = float(timeout_int)
    if timeout_override_s is not None:
        timeout = timeout_override_s
    return FunctionConfig(name, memory, disk, timeout, version)


def estimate_price(region: str, duration_ms: float, memory_mb: int, lambdas_invoked: int) -> float:
    """lambda-client/src/estimate-price.ts ``estimatePrice`` with the disk Remotion prices
    every render at (MAX_EPHEMERAL_STORAGE_IN_MB). Same float operations, same rounding."""
    if duration_ms < 0:
        raise ValueError(
            f"Parameter 'durationInMilliseconds' must be over 0 but it is {duration_ms}."
        )
    requests, duration_price, storage_price = PRICES[region]
    time_cost = duration_price * ((memory_mb * duration_ms) / 1000 / 1024)
    charged_disk = max(0, MAX_EPHEMERAL_STORAGE_IN_MB - MIN_EPHEMERAL_STORAGE_IN_MB)
    disk_cost = charged_disk * storage_price * (duration_ms / 1000 / 1024)
    invocation_cost = requests * lambdas_invoked
    return jsjson.to_fixed(time_cost + disk_cost + invocation_cost, 5)


def format_costs_info(accrued: float, region: str) -> JSONDict:
    """serverless-client/src/format-costs-info.ts ``formatCostsInfo`` (progress, stills)."""
    cur = currency(region)
    symbol = "¥" if cur == "CNY" else "$"
    if accrued < 0.001:
        display = f"<{symbol}0.001"
    else:
        display = symbol + jsjson.format_fixed_grouped(accrued, 3)
    return {
        "accruedSoFar": jsjson.num(accrued),
        "displayCost": display,
        "currency": cur,
        "disclaimer": "Estimated cost only. Does not include charges for other AWS services.",
    }


def post_render_cost(cost: float, region: str) -> JSONDict:
    """serverless/src/create-post-render-data.ts ``cost``: other key order, other disclaimer,
    and a plain decimal display (``"$0"``, ``"$0.012"``), not ``formatCostsInfo``."""
    cur = currency(region)
    return {
        "currency": cur,
        "disclaimer": "Estimated cost for function invocations only. Does not include cost "
        "for storage and data transfer.",
        "estimatedCost": jsjson.num(cost),
        "estimatedDisplayCost": ("¥" if cur == "CNY" else "$") + jsjson.format_decimal(cost),
    }


def output_url(region: str, bucket: str, key: str) -> str:
    # lambda-client/src/get-output-url-from-metadata.ts: path style.
    return f"https://s3.{region}.{dns_suffix(region)}/{bucket}/{key}"


def _encode_aws_url_params(text: str) -> str:
    # lambda-client/src/encode-aws-url-params.ts: encodeURIComponent, then % -> $25.
    return quote(text, safe="-_.!~*'()").replace("%", "$25")


def cloudwatch_url(region: str, function_name: str, query: str) -> str:
    # lambda-client/src/get-aws-urls.ts cloudWatchUrlWithQuery
    domain = "console.amazonaws.cn" if is_china(region) else "console.aws.amazon.com"
    return (
        f"https://{region}.{domain}/cloudwatch/home?region={region}#logsV2:log-groups/"
        f"log-group/$252Faws$252Flambda$252F{function_name}/log-events$3FfilterPattern$3D"
        f"{_encode_aws_url_params(query)}"
    )


def cloudwatch_method_url(region: str, function_name: str, method: str, render_id: str) -> str:
    return cloudwatch_url(region, function_name, f'"method={method},renderId={render_id}"')


def cloudwatch_renderer_url(
    region: str, function_name: str, render_id: str, chunk: int | None
) -> str:
    suffix = "" if chunk is None else f",chunk={chunk},"
    return cloudwatch_url(region, function_name, f'"method=renderer,renderId={render_id}{suffix}"')
