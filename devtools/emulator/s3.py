"""The S3 object model behind the emulator's S3 subset, and S3's wire helpers.

A :class:`Bucket` holds objects by key: :class:`StoredObject` for bytes somebody PUT (input
props, cancel.json, a raw progress.json) or a render wrote (its output: a placeholder of the
render's size, stored as a length of zero bytes), and :class:`ProgressObject` for the
progress.json a launch function uploads (a snapshot, serialised on first read). Also here:
S3's timestamps, continuation tokens, ``Range`` parsing, ACLs and the XML errors. The
requests themselves are served by :mod:`devtools.emulator.s3_requests`.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Final
from xml.sax.saxutils import escape as _xml_escape

from devtools.emulator.progress_file import Snapshot
from devtools.emulator.responses import InvokeResult

S3_MAX_KEYS: Final = 1000
S3_XMLNS: Final = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
ZEROS: Final = bytes(1 << 20)
MEDIA_TYPES: Final = {
    "mp4": "video/mp4",
    "webm": "video/webm",
    "mov": "video/quicktime",
    "mkv": "video/x-matroska",
    "ts": "video/mp2t",
    "gif": "image/gif",
    "mp3": "audio/mpeg",
    "aac": "audio/aac",
    "wav": "audio/wav",
    "json": "application/json",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "pdf": "application/pdf",
}


def media_type(key: str) -> str:
    # lambda-client/src/write-file.ts: mime.lookup(key) || 'application/octet-stream'
    extension = key.rsplit(".", 1)[-1].lower() if "." in key else ""
    return MEDIA_TYPES.get(extension, "application/octet-stream")


def quoted_md5(data: bytes) -> str:
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


@dataclass(slots=True)
class StoredObject:
    """Bytes in a bucket; ``padding`` zero bytes follow ``body`` (render outputs)."""

    body: bytes
    content_type: str
    last_modified_ms: int
    padding: int = 0
    acl: str | None = None
    content_disposition: str | None = None
    etag: str = ""

    def __post_init__(self) -> None:
        if not self.etag:
            self.etag = quoted_md5(self.body)

    @property
    def size(self) -> int:
        return len(self.body) + self.padding

    def data(self) -> bytes:
        return self.body


@dataclass(slots=True)
class ProgressObject:
    """progress.json as the last upload of a render's launch function wrote it."""

    snapshot: Snapshot
    acl: str | None = "private"
    content_disposition: str | None = None
    padding: int = 0
    content_type: str = "application/json"

    @property
    def last_modified_ms(self) -> int:
        return self.snapshot.written_ms

    @property
    def etag(self) -> str:
        return self.snapshot.etag()

    @property
    def size(self) -> int:
        return len(self.snapshot.body())

    @property
    def body(self) -> bytes:
        return self.snapshot.body()

    def data(self) -> bytes:
        return self.snapshot.body()


S3Object = StoredObject | ProgressObject


@dataclass(slots=True)
class Bucket:
    """Objects by key. New keys are appended (O(1)); a listing sorts lazily, which timsort
    does in about linear time since all but the newest keys are already in order."""

    created_ms: int
    objects: dict[str, S3Object] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    is_sorted: bool = True
    policy: bytes | None = None
    lifecycle: bytes | None = None
    acl: str | None = None

    def put(self, key: str, obj: S3Object) -> None:
        if key not in self.objects:
            if self.keys and key < self.keys[-1]:
                self.is_sorted = False
            self.keys.append(key)
        self.objects[key] = obj

    def delete(self, key: str) -> bool:
        if self.objects.pop(key, None) is None:
            return False
        self.keys.remove(key)
        return True

    def sorted_keys(self) -> list[str]:
        if not self.is_sorted:
            self.keys.sort()
            self.is_sorted = True
        return self.keys


def iso_ms(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms // 1000)) + (
        f".{epoch_ms % 1000:03d}Z"
    )


def http_date(epoch_ms: int) -> str:
    return email.utils.formatdate(epoch_ms // 1000, usegmt=True)


def successor(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < sys.maxunicode:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


def encode_token(kind: str, marker: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}{marker}".encode()).decode()


def decode_token(token: str) -> tuple[str, str] | None:
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii")).decode()
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not raw or raw[0] not in "kp":
        return None
    return raw[0], raw[1:]


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=a-b`` / ``a-`` / ``-n`` range; ValueError if unsatisfiable."""
    spec = header.strip()
    if not spec.startswith("bytes=") or "," in spec:
        return None
    first, sep, last = spec[len("bytes=") :].partition("-")
    if not sep or not (first.isdigit() or last.isdigit()):
        return None
    if not first.isdigit():
        length = int(last)
        if length == 0 or size == 0:
            raise ValueError(header)
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last.isdigit() else size - 1
    if start >= size:
        raise ValueError(header)
    if end < start:
        return None
    return start, min(end, size - 1)


def s3_result(
    status: int,
    body: bytes = b"",
    *,
    content_type: str = "application/xml",
    headers: tuple[tuple[str, str], ...] = (),
    padding: int = 0,
) -> InvokeResult:
    request_id = secrets.token_hex(8).upper()
    return InvokeResult(
        status, body, (("x-amz-request-id", request_id), *headers), content_type, padding
    )


def s3_error(status: int, code: str, message: str, **details: str) -> InvokeResult:
    extra = "".join(f"<{name}>{_xml_escape(value)}</{name}>" for name, value in details.items())
    body = (
        f"{XML_DECLARATION}<Error><Code>{code}</Code><Message>{_xml_escape(message)}</Message>"
        f"{extra}<HostId>lambda-emulator</HostId></Error>"
    )
    return s3_result(status, body.encode())


def no_such_bucket(bucket: str) -> InvokeResult:
    return s3_error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)


def invalid_argument(message: str, name: str, value: str) -> InvokeResult:
    return s3_error(400, "InvalidArgument", message, ArgumentName=name, ArgumentValue=value)


def acl_xml(owner_id: str, acl: str | None) -> bytes:
    """GetObjectAcl's AccessControlPolicy for a canned ACL (``public-read`` adds AllUsers)."""
    owner = f"<ID>{owner_id}</ID><DisplayName>emulator</DisplayName>"
    grants = (
        '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:type="CanonicalUser">{owner}</Grantee><Permission>FULL_CONTROL</Permission></Grant>'
    )
    if acl == "public-read":
        grants += (
            '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI>'
            "</Grantee><Permission>READ</Permission></Grant>"
        )
    return (
        f'{XML_DECLARATION}<AccessControlPolicy xmlns="{S3_XMLNS}"><Owner>{owner}</Owner>'
        f"<AccessControlList>{grants}</AccessControlList></AccessControlPolicy>"
    ).encode()
