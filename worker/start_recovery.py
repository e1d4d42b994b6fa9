"""Finding a render whose ``start`` had an unknown outcome, by its ``outName``, without
starting another one.

A start that timed out, or whose worker died after sending it, may have launched a render:
``start`` returns the renderId only in its answer. Every attempt of a render has a
deterministic ``outName`` (``<render id>-<attempt>.<ext>``), and Remotion writes
``renders/<renderId>/progress.json`` at the start (its ``renderMetadata`` names the
``outName`` once launch has validated the composition, a few seconds later) and
``renders/<renderId>/<outName>`` when done (``packages/serverless/src/handlers/start.ts``,
``launch.ts``, ``overall-render-progress.ts``). So the bucket's ``renders/`` prefix is listed
and the recent ``progress.json`` files read, newest first.

A renderId is ``[deleteAfter, 10 random characters of [a-z0-9]]`` (``lambda-client/src/
lifecycle.ts``, ``random-hash.ts``), so the listing is split into 36 shards by the first random
character under the configured ``deleteAfter`` prefix, listed in parallel: with 50,000 renders
in the bucket one search is a few pages per shard instead of a hundred pages in a row
(``python -m devtools.bench --only recovery``). The attempt being searched for was started by
this deployment, with the same ``deleteAfter``. ``REMOTION_DELETE_AFTER`` (default 30 days)
keeps the bucket bounded; this runs only after an ambiguous start, never on the normal path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import botocore.exceptions as bexc

from worker.lambda_errors import LambdaTransient

#: How long after its start a render's progress.json may still lack renderMetadata.
METADATA_GRACE_S = 60.0
#: The characters of Remotion's random render ids (``lambda-client/src/random-hash.ts``).
RENDER_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def shard_prefixes(delete_after: str | None) -> list[str]:
    """Key prefixes that together cover every render folder this deployment creates."""
    head = f"renders/{delete_after}-" if delete_after else "renders/"
    return [head + c for c in RENDER_ID_ALPHABET]


@dataclass(frozen=True)
class StartedRender:
    render_id: str
    bucket: str


def find_render(
    s3: Any, buckets: list[str], out_name: str, since: datetime | None, prefixes: list[str]
) -> StartedRender | None:
    """The render with this ``outName`` in any of ``buckets``, or None if there is none.

    Raises ``LambdaTransient`` (``may_have_started``) while a recent render's metadata is not
    written yet: it could be ours, so the caller must look again before starting.
    """
    try:
        for bucket in buckets:
            found = _search_bucket(s3, bucket, out_name, since, prefixes)
            if found is not None:
                return found
    except (bexc.BotoCoreError, bexc.ClientError) as exc:
        raise LambdaTransient(f"could not search S3 for {out_name}: {exc}") from exc
    return None


def _objects(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects += page.get("Contents", [])
    return objects


def _listing(s3: Any, bucket: str, prefixes: list[str]) -> Iterator[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=min(16, len(prefixes))) as pool:
        for objects in pool.map(lambda prefix: _objects(s3, bucket, prefix), prefixes):
            yield from objects


def _search_bucket(
    s3: Any, bucket: str, out_name: str, since: datetime | None, prefixes: list[str]
) -> StartedRender | None:
    candidates = []
    for obj in _listing(s3, bucket, prefixes):
        parts = obj["Key"].split("/")
        if len(parts) != 3:
            continue
        if parts[2] == out_name:
            return StartedRender(render_id=parts[1], bucket=bucket)
        if parts[2] == "progress.json" and (since is None or obj["LastModified"] >= since):
            candidates.append((obj["LastModified"], obj["Key"], parts[1]))
    undecided = 0
    longest_wait_s = 0.0
    now = datetime.now(UTC)
    for modified, key, render_id in sorted(candidates, reverse=True):
        body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        metadata = body.get("renderMetadata")
        if metadata is None:
            # Filled in once launch validated the composition; until then this render could be
            # ours. (If validation failed it stays null: ignore it once it is old enough.)
            wait_s = METADATA_GRACE_S - (now - modified).total_seconds()
            if wait_s > 0:
                undecided += 1
                longest_wait_s = max(longest_wait_s, wait_s)
            continue
        name = metadata.get("outName")
        if isinstance(name, dict):
            name = name.get("key")
        if name == out_name:
            return StartedRender(render_id=render_id, bucket=bucket)
    if undecided:
        raise LambdaTransient(
            f"{undecided} recent render(s) in {bucket} have no metadata yet",
            may_have_started=True,
            decided_within_s=longest_wait_s,
        )
    return None
