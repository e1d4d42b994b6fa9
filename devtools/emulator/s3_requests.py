"""LambdaEmulator's S3: the path-style REST subset, and the function's own S3 calls.

Served over HTTP (each request counted by operation in the stats' ``s3_calls``):
ListBuckets, CreateBucket, HeadBucket, GetBucketLocation, DeleteBucket, ListObjectsV2
(pagination, delimiter, start-after, url encoding), GetObject (with ``Range``), HeadObject,
GetObjectAcl, PutObject, DeleteObject, and as accepted no-ops the bucket set-up calls
Remotion's ``lambda-client/src/create-bucket.ts`` makes (PutBucketPolicy, PutBucketAcl,
DeleteBucketOwnershipControls, DeletePublicAccessBlock, PutBucketLifecycleConfiguration).
A PUT of ``renders/<id>/cancel.json`` is what the Python client's
``cancel_render_on_lambda`` does; the renderers of that render notice it at their next
poll. The function's own calls (progress uploads, outputs, cancel signals) use the same
objects without HTTP and are counted in ``internal_s3_calls``. Listing is in
:mod:`devtools.emulator.s3_listing`.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote
from xml.sax.saxutils import escape as _xml_escape

from devtools.emulator.responses import InvokeResult
from devtools.emulator.s3 import (
    S3_XMLNS,
    XML_DECLARATION,
    Bucket,
    ProgressObject,
    StoredObject,
    acl_xml,
    byte_range,
    http_date,
    iso_ms,
    no_such_bucket,
    s3_error,
    s3_result,
)
from devtools.emulator.s3_listing import list_objects_v2
from devtools.emulator.state import EmulatorState

_LOCATION = re.compile(r"<LocationConstraint>([^<]*)</LocationConstraint>")
_SUBRESOURCES = {
    ("PUT", "policy"): "PutBucketPolicy",
    ("PUT", "acl"): "PutBucketAcl",
    ("PUT", "lifecycle"): "PutBucketLifecycleConfiguration",
    ("PUT", "ownershipControls"): "PutBucketOwnershipControls",
    ("PUT", "publicAccessBlock"): "PutPublicAccessBlock",
    ("DELETE", "ownershipControls"): "DeleteBucketOwnershipControls",
    ("DELETE", "publicAccessBlock"): "DeletePublicAccessBlock",
    ("DELETE", "lifecycle"): "DeleteBucketLifecycle",
}


def decode_aws_chunked(body: bytes) -> bytes:
    """Undo ``Content-Encoding: aws-chunked`` (botocore's checksum trailers)."""
    out, index = [], 0
    while index < len(body):
        line_end = body.index(b"\r\n", index)
        size = int(body[index:line_end].split(b";", 1)[0], 16)
        index = line_end + 2
        if size == 0:
            break
        out.append(body[index : index + size])
        index += size + 2
    return b"".join(out)


class S3Mixin(EmulatorState):
    """LambdaEmulator's S3 (see the module docstring)."""

    @property
    def _owner_id(self) -> str:
        import hashlib

        return hashlib.sha256(self.account_id.encode()).hexdigest()

    # -- the function's own calls (lock held) ---------------------------------------------

    def seed_finished_renders(
        self, bucket_name: str, count: int, age_s: float, delete_after: str | None
    ) -> int:
        """Control API: ``count`` old, finished render folders (a progress.json naming its
        outName and the output) in a bucket, as a long-lived Remotion bucket holds; for
        measuring what listing ``renders/`` costs."""
        with self._lock:
            now = time.monotonic()
            bucket = self._buckets.get(bucket_name) or self._create_bucket(bucket_name, now)
            written = self._ms(now) - int(age_s * 1000)
            rng = random.Random(count)
            alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
            for i in range(count):
                # Remotion's id shape (lambda-client/src/lifecycle.ts): [deleteAfter, 10 random]
                random_part = "".join(rng.choice(alphabet) for _ in range(10))
                render_id = f"{delete_after}-{random_part}" if delete_after else random_part
                out = f"seeded-{i}.mp4"
                doc = json.dumps({"renderMetadata": {"renderId": render_id, "outName": out}})
                bucket.put(
                    f"renders/{render_id}/progress.json",
                    StoredObject(doc.encode(), "application/json", written),
                )
                bucket.put(
                    f"renders/{render_id}/{out}", StoredObject(b"", "video/mp4", written, 1024)
                )
            return count

    def _create_bucket(self, name: str, now: float) -> Bucket:
        bucket = self._buckets[name] = Bucket(self._ms(now))
        return bucket

    def _put_object(self, now: float, bucket: str, key: str, obj: object, op: str) -> bool:
        """Write an object; False if the bucket does not exist (NoSuchBucket)."""
        self._counters.internal_s3_calls[op] += 1
        return self._store(now, bucket, key, obj)

    def _store(self, now: float, bucket_name: str, key: str, obj: object) -> bool:
        bucket = self._buckets.get(bucket_name)
        if bucket is None:
            return False
        assert isinstance(obj, StoredObject | ProgressObject)
        bucket.put(key, obj)
        render_id = self._is_cancel_key(key)
        if render_id is not None:
            render = self._renders.get(render_id)
            if render is not None and render.bucket == bucket_name:
                self._cancel_signal(now, render)
        return True

    def _get_object_internal(self, bucket_name: str, key: str) -> tuple[bool, bytes | None]:
        self._counters.internal_s3_calls["GetObject"] += 1
        bucket = self._buckets.get(bucket_name)
        if bucket is None:
            return False, None
        obj = bucket.objects.get(key)
        return True, None if obj is None else obj.data()

    def _object_exists(self, bucket_name: str, key: str) -> bool:
        bucket = self._buckets.get(bucket_name)
        return bucket is not None and key in bucket.objects

    def _delete_object_internal(self, bucket_name: str, key: str) -> None:
        self._counters.internal_s3_calls["DeleteObject"] += 1
        bucket = self._buckets.get(bucket_name)
        if bucket is not None:
            bucket.delete(key)

    # -- HTTP ----------------------------------------------------------------------------------

    def s3(
        self,
        method: str,
        path: str,
        query: str = "",
        range_header: str | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> InvokeResult:
        """Serve one path-style S3 request."""
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        bucket_name, _, raw_key = path[1:].partition("/")
        bucket_name, key = unquote(bucket_name), unquote(raw_key)
        params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        operation = self._operation(method, bucket_name, key, params)
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            calls = self._counters.s3_calls
            calls[operation] = calls.get(operation, 0) + 1
            if operation == "Unsupported":
                suffix = f"?{query}" if query else ""
                return s3_error(
                    501,
                    "NotImplemented",
                    f"The lambda emulator does not implement {method} {path}{suffix}",
                )
            if operation == "ListBuckets":
                return self._list_buckets()
            if operation == "CreateBucket":
                return self._create_bucket_request(bucket_name, body, now)
            bucket = self._buckets.get(bucket_name)
            if bucket is None:
                return no_such_bucket(bucket_name)
            if operation in ("GetObject", "HeadObject", "GetObjectAcl"):
                return self._get_object(bucket, key, operation, range_header)
            if operation == "ListObjectsV2":
                return list_objects_v2(bucket_name, bucket, params)
            if operation == "PutObject":
                return self._put_request(now, bucket_name, key, body, headers)
            if operation == "DeleteObject":
                bucket.delete(key)
                return s3_result(204)
            return self._bucket_operation(operation, bucket_name, bucket, body)

    @staticmethod
    def _operation(method: str, bucket: str, key: str, params: Mapping[str, str]) -> str:
        if not bucket:
            return "ListBuckets" if method == "GET" else "Unsupported"
        if key:
            if "x-id" in params and params["x-id"] not in (
                "GetObject",
                "PutObject",
                "DeleteObject",
            ):
                return "Unsupported"
            if method == "GET":
                return "GetObjectAcl" if "acl" in params else "GetObject"
            return {"HEAD": "HeadObject", "PUT": "PutObject", "DELETE": "DeleteObject"}.get(
                method, "Unsupported"
            )
        for (verb, name), operation in _SUBRESOURCES.items():
            if method == verb and name in params:
                return operation
        if method == "GET" and "location" in params:
            return "GetBucketLocation"
        if method == "GET" and params.get("list-type") == "2":
            return "ListObjectsV2"
        if method == "HEAD" and not params:
            return "HeadBucket"
        if method == "PUT" and not params:
            return "CreateBucket"
        if method == "DELETE" and not params:
            return "DeleteBucket"
        return "Unsupported"

    def _list_buckets(self) -> InvokeResult:
        entries = "".join(
            f"<Bucket><Name>{_xml_escape(name)}</Name><CreationDate>{iso_ms(bucket.created_ms)}"
            f"</CreationDate><BucketRegion>{self.region}</BucketRegion></Bucket>"
            for name, bucket in sorted(self._buckets.items())
        )
        body = (
            f'{XML_DECLARATION}<ListAllMyBucketsResult xmlns="{S3_XMLNS}"><Owner>'
            f"<ID>{self._owner_id}</ID><DisplayName>emulator</DisplayName></Owner>"
            f"<Buckets>{entries}</Buckets></ListAllMyBucketsResult>"
        )
        return s3_result(200, body.encode())

    def _create_bucket_request(self, name: str, body: bytes, now: float) -> InvokeResult:
        match = _LOCATION.search(body.decode("utf-8", "replace"))
        wanted = (match.group(1) if match else "") or "us-east-1"
        if wanted != self.region:
            return s3_error(
                400,
                "IllegalLocationConstraintException",
                f"The {wanted} location constraint is incompatible for the region specific "
                "endpoint this request was sent to.",
            )
        if name in self._buckets and self.region != "us-east-1":
            return s3_error(
                409,
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own "
                "it.",
                BucketName=name,
            )
        if name not in self._buckets:
            self._create_bucket(name, now)
        return s3_result(200, headers=(("Location", f"/{name}"),))

    def _bucket_operation(
        self, operation: str, name: str, bucket: Bucket, body: bytes
    ) -> InvokeResult:
        if operation == "HeadBucket":
            return s3_result(200, headers=(("x-amz-bucket-region", self.region),))
        if operation == "GetBucketLocation":
            location = "" if self.region == "us-east-1" else self.region
            return s3_result(
                200,
                f'{XML_DECLARATION}<LocationConstraint xmlns="{S3_XMLNS}">{location}'
                "</LocationConstraint>".encode(),
            )
        if operation == "DeleteBucket":
            if bucket.objects:
                return s3_error(
                    409,
                    "BucketNotEmpty",
                    "The bucket you tried to delete is not empty",
                    BucketName=name,
                )
            del self._buckets[name]
            return s3_result(204)
        if operation == "PutBucketPolicy":
            bucket.policy = body
            return s3_result(204)
        if operation == "PutBucketLifecycleConfiguration":
            bucket.lifecycle = body
            return s3_result(200)
        if operation in (
            "DeleteBucketOwnershipControls",
            "DeletePublicAccessBlock",
            "DeleteBucketLifecycle",
        ):
            return s3_result(204)
        return s3_result(200)  # PutBucketAcl, PutBucketOwnershipControls, PutPublicAccessBlock

    def _put_request(
        self, now: float, bucket_name: str, key: str, body: bytes, headers: Mapping[str, str]
    ) -> InvokeResult:
        if "x-amz-copy-source" in headers:
            return s3_error(
                501, "NotImplemented", "The lambda emulator does not implement CopyObject"
            )
        if "aws-chunked" in headers.get("content-encoding", ""):
            body = decode_aws_chunked(body)
        obj = StoredObject(
            body,
            headers.get("content-type") or "binary/octet-stream",
            self._ms(now),
            acl=headers.get("x-amz-acl"),
            content_disposition=headers.get("content-disposition"),
        )
        self._store(now, bucket_name, key, obj)
        return s3_result(200, headers=(("ETag", obj.etag),))

    def _get_object(
        self, bucket: Bucket, key: str, operation: str, range_header: str | None
    ) -> InvokeResult:
        found = bucket.objects.get(key)
        if found is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        if operation == "GetObjectAcl":
            return s3_result(200, acl_xml(self._owner_id, found.acl))
        headers: tuple[tuple[str, str], ...] = (
            ("ETag", found.etag),
            ("Last-Modified", http_date(found.last_modified_ms)),
            ("Accept-Ranges", "bytes"),
        )
        if found.content_disposition:
            headers += (("Content-Disposition", found.content_disposition),)
        data, padding, status, size = found.data(), found.padding, 200, found.size
        if range_header and operation == "GetObject":
            try:
                span = byte_range(range_header, size)
            except ValueError:
                return s3_error(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable",
                    RangeRequested=range_header,
                    ActualObjectSize=str(size),
                )
            if span is not None:
                first, last = span
                status = 206
                data = data[first : last + 1]
                padding = last + 1 - max(first, len(found.data())) if padding else 0
                headers += (("Content-Range", f"bytes {first}-{last}/{size}"),)
        return s3_result(
            status, data, content_type=found.content_type, headers=headers, padding=padding
        )
