"""``find_render`` while a recent render's metadata is not written yet: it cannot decide, and
says how long until it can, so a start waits that long at most (not its exponential backoff).

The bucket is a dict behind the two S3 calls the search makes; the same search against the
emulator's S3 is ``tests/test_lambda_emulator.py::test_find_render_by_out_name_through_s3_only``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worker.lambda_errors import LambdaTransient
from worker.start_recovery import METADATA_GRACE_S, find_render, shard_prefixes


class _Bucket:
    """``list_objects_v2`` pages and ``get_object`` over {key: (last modified, body)}."""

    def __init__(self, objects: dict[str, tuple[datetime, dict[str, Any]]]) -> None:
        self.objects = objects

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        bucket = self

        class _Pages:
            def paginate(self, *, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:
                yield {
                    "Contents": [
                        {"Key": key, "LastModified": modified}
                        for key, (modified, _) in bucket.objects.items()
                        if key.startswith(Prefix)
                    ]
                }

        return _Pages()

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(json.dumps(self.objects[Key][1]).encode())}


def _progress(age_s: float, out_name: str | None) -> tuple[datetime, dict[str, Any]]:
    metadata = None if out_name is None else {"outName": out_name}
    return datetime.now(UTC) - timedelta(seconds=age_s), {"renderMetadata": metadata}


def test_an_undecided_search_says_when_it_will_be_decided() -> None:
    s3 = _Bucket(
        {
            "renders/30-days-aaaaaaaaaa/progress.json": _progress(45.0, None),
            "renders/30-days-bbbbbbbbbb/progress.json": _progress(10.0, None),
            "renders/30-days-cccccccccc/progress.json": _progress(5.0, "someone-else-1.mp4"),
        }
    )
    with pytest.raises(LambdaTransient) as raised:
        find_render(s3, ["bucket"], "job-1-2.mp4", None, shard_prefixes("30-days"))
    assert raised.value.may_have_started
    assert "2 recent render(s)" in str(raised.value)
    # The youngest undecided render passes its grace in ~50 s; then the answer is certain.
    assert raised.value.decided_within_s == pytest.approx(METADATA_GRACE_S - 10.0, abs=2.0)


def test_a_search_past_every_grace_decides() -> None:
    s3 = _Bucket({"renders/30-days-aaaaaaaaaa/progress.json": _progress(61.0, None)})
    assert find_render(s3, ["bucket"], "job-1-2.mp4", None, shard_prefixes("30-days")) is None
    s3.objects["renders/30-days-dddddddddd/progress.json"] = _progress(1.0, "job-1-2.mp4")
    found = find_render(s3, ["bucket"], "job-1-2.mp4", None, shard_prefixes("30-days"))
    assert found is not None and found.render_id == "30-days-dddddddddd"
