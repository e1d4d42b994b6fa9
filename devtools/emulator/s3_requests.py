"""LambdaEmulator's S3 request handling: the read-only, path-style S3 subset.

ListBuckets, GetBucketLocation, HeadBucket, ListObjectsV2, GetObject and HeadObject over
the objects renders write (see the package docstring), each counted by operation in the
stats' ``s3_calls``. A mixin of :class:`~devtools.emulator.core.LambdaEmulator`, since it
reads the same buckets and renders under the same lock; the object model is in
:mod:`devtools.emulator.s3`.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape as _xml_escape

from devtools.emulator.responses import InvokeResult
from devtools.emulator.s3 import (
    _S3_OWNER_ID,
    _S3_XMLNS,
    _XML_DECLARATION,
    S3_MAX_KEYS,
    _Bucket,
    _byte_range,
    _decode_token,
    _encode_token,
    _http_date,
    _iso_ms,
    _no_such_bucket,
    _output_object,
    _progress_document,
    _quoted_md5,
    _s3_error,
    _s3_invalid_argument,
    _s3_result,
    _S3Object,
    _successor,
)
from devtools.emulator.state import _EmulatorState


class _S3Requests(_EmulatorState):
    """LambdaEmulator's S3 requests (see the module docstring)."""

    # -- S3 ----------------------------------------------------------------------------

    def _bucket(self, name: str, created_ms: int) -> _Bucket:
        """The bucket called ``name``, created on first use (lock held)."""
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(created_ms)
        return bucket

    def _s3_object(self, bucket: _Bucket, key: str, now_mono: float) -> _S3Object | None:
        """What a read of ``key`` sees at ``now_mono`` (lock held)."""
        render = bucket.progress.get(key)
        if render is not None:
            with_metadata = now_mono - render.started_mono >= render.metadata_delay_s
            cached = self._progress_bodies.get((render.render_id, with_metadata))
            if cached is None:
                body = _progress_document(render, with_metadata)
                cached = self._progress_bodies[(render.render_id, with_metadata)] = (
                    body,
                    _quoted_md5(body),
                )
            written_ms = render.started_epoch_ms
            if with_metadata:
                written_ms += int(render.metadata_delay_s * 1000)
            return _S3Object(key, cached[0], 0, cached[1], written_ms, "application/json")
        writers = bucket.outputs.get(key)
        return None if writers is None else _output_object(key, writers, now_mono)

    def s3(
        self, method: str, path: str, query: str = "", range_header: str | None = None
    ) -> InvokeResult:
        """Serve one path-style S3 request (the read-only subset described in the package)."""
        bucket_name, _, raw_key = path[1:].partition("/")
        bucket_name, key = unquote(bucket_name), unquote(raw_key)
        params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        if method not in ("GET", "HEAD"):
            operation = "Unsupported"
        elif not bucket_name:
            operation = "ListBuckets"
        elif key:
            operation = "GetObject" if method == "GET" else "HeadObject"
        elif "location" in params:
            operation = "GetBucketLocation"
        elif method == "HEAD":
            operation = "HeadBucket"
        elif params.get("list-type") == "2":
            operation = "ListObjectsV2"
        else:
            operation = "Unsupported"
        with self._lock:
            calls = self._counters.s3_calls
            calls[operation] = calls.get(operation, 0) + 1
        if operation == "ListBuckets":
            return self._list_buckets()
        if operation in ("GetObject", "HeadObject"):
            return self._get_object(bucket_name, key, range_header if method == "GET" else None)
        if operation == "ListObjectsV2":
            return self._list_objects_v2(bucket_name, params)
        with self._lock:
            known = bucket_name in self._buckets
        if operation == "Unsupported":
            return _s3_error(
                501,
                "NotImplemented",
                f"The lambda emulator does not implement {method} {path}"
                + (f"?{query}" if query else ""),
            )
        if not known:
            return _no_such_bucket(bucket_name)
        if operation == "HeadBucket":
            return _s3_result(200, b"", headers=(("x-amz-bucket-region", self.region),))
        location = "" if self.region == "us-east-1" else self.region
        return _s3_result(
            200,
            f'{_XML_DECLARATION}<LocationConstraint xmlns="{_S3_XMLNS}">{location}'
            "</LocationConstraint>".encode(),
        )

    def _list_buckets(self) -> InvokeResult:
        with self._lock:
            buckets = sorted((name, bucket.created_ms) for name, bucket in self._buckets.items())
        entries = "".join(
            f"<Bucket><Name>{_xml_escape(name)}</Name><CreationDate>{_iso_ms(created)}"
            f"</CreationDate><BucketRegion>{self.region}</BucketRegion></Bucket>"
            for name, created in buckets
        )
        body = (
            f'{_XML_DECLARATION}<ListAllMyBucketsResult xmlns="{_S3_XMLNS}"><Owner>'
            f"<ID>{_S3_OWNER_ID}</ID><DisplayName>emulator</DisplayName></Owner>"
            f"<Buckets>{entries}</Buckets></ListAllMyBucketsResult>"
        )
        return _s3_result(200, body.encode())

    def _get_object(self, bucket_name: str, key: str, range_header: str | None) -> InvokeResult:
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(bucket_name)
            found = None if bucket is None else self._s3_object(bucket, key, now)
        if bucket is None:
            return _no_such_bucket(bucket_name)
        if found is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        headers: tuple[tuple[str, str], ...] = (
            ("ETag", found.etag),
            ("Last-Modified", _http_date(found.last_modified_ms)),
            ("Accept-Ranges", "bytes"),
        )
        body, padding, status = found.body, found.padding, 200
        if range_header:
            try:
                span = _byte_range(range_header, found.size)
            except ValueError:
                return _s3_error(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable",
                    RangeRequested=range_header,
                    ActualObjectSize=str(found.size),
                )
            if span is not None:
                first, last = span
                status = 206
                body = found.body[first : last + 1]
                padding = last + 1 - max(first, len(found.body)) if padding else 0
                headers += (("Content-Range", f"bytes {first}-{last}/{found.size}"),)
        return _s3_result(
            status, body, content_type=found.content_type, headers=headers, padding=padding
        )

    def _list_objects_v2(self, bucket_name: str, params: Mapping[str, str]) -> InvokeResult:
        prefix = params.get("prefix", "")
        delimiter = params.get("delimiter", "")
        start_after = params.get("start-after", "")
        token = params.get("continuation-token")
        url_encode = params.get("encoding-type") == "url"
        raw_max_keys = params.get("max-keys", str(S3_MAX_KEYS))
        try:
            max_keys = int(raw_max_keys)
            if max_keys < 0:
                raise ValueError(raw_max_keys)
        except ValueError:
            return _s3_invalid_argument(
                "Provided max-keys not an integer or within integer range",
                "max-keys",
                raw_max_keys,
            )
        max_keys = min(max_keys, S3_MAX_KEYS)
        resume = None
        if token is not None:
            resume = _decode_token(token)
            if resume is None:
                return _s3_invalid_argument(
                    "The continuation token provided is incorrect", "continuation-token", token
                )

        contents: list[_S3Object] = []
        common_prefixes: list[str] = []
        last: tuple[str, str] | None = None
        truncated = False
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(bucket_name)
            if bucket is not None:
                keys = bucket.sorted_keys()
                if resume is not None and resume[0] == "p":
                    bound = _successor(resume[1])
                    index = len(keys) if bound is None else bisect.bisect_left(keys, bound)
                elif resume is not None:
                    index = bisect.bisect_right(keys, resume[1])
                else:
                    index = bisect.bisect_right(keys, start_after) if start_after else 0
                index = max(index, bisect.bisect_left(keys, prefix))
                while index < len(keys):
                    key = keys[index]
                    if not key.startswith(prefix):
                        break
                    found = self._s3_object(bucket, key, now)
                    if found is None:
                        index += 1
                        continue
                    if len(contents) + len(common_prefixes) >= max_keys:
                        truncated = max_keys > 0
                        break
                    cut = key.find(delimiter, len(prefix)) if delimiter else -1
                    if cut < 0:
                        contents.append(found)
                        last = ("k", key)
                        index += 1
                        continue
                    common = key[: cut + len(delimiter)]
                    common_prefixes.append(common)
                    last = ("p", common)
                    bound = _successor(common)
                    index = len(keys) if bound is None else bisect.bisect_left(keys, bound, index)
        if bucket is None:
            return _no_such_bucket(bucket_name)

        def text(value: str) -> str:
            return quote(value, safe="/") if url_encode else _xml_escape(value)

        parts = [
            f'{_XML_DECLARATION}<ListBucketResult xmlns="{_S3_XMLNS}">',
            f"<Name>{_xml_escape(bucket_name)}</Name><Prefix>{text(prefix)}</Prefix>",
        ]
        if token is not None:
            parts.append(f"<ContinuationToken>{_xml_escape(token)}</ContinuationToken>")
        if truncated and last is not None:
            parts.append(f"<NextContinuationToken>{_encode_token(*last)}</NextContinuationToken>")
        parts.append(
            f"<KeyCount>{len(contents) + len(common_prefixes)}</KeyCount>"
            f"<MaxKeys>{max_keys}</MaxKeys>"
        )
        if delimiter:
            parts.append(f"<Delimiter>{text(delimiter)}</Delimiter>")
        parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if start_after:
            parts.append(f"<StartAfter>{text(start_after)}</StartAfter>")
        parts.extend(
            f"<Contents><Key>{text(found.key)}</Key>"
            f"<LastModified>{_iso_ms(found.last_modified_ms)}</LastModified>"
            f"<ETag>{_xml_escape(found.etag)}</ETag><Size>{found.size}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
            for found in contents
        )
        parts.extend(
            f"<CommonPrefixes><Prefix>{text(common)}</Prefix></CommonPrefixes>"
            for common in common_prefixes
        )
        if url_encode:
            parts.append("<EncodingType>url</EncodingType>")
        parts.append("</ListBucketResult>")
        return _s3_result(200, "".join(parts).encode())
