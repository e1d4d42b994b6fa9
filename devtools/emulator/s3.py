"""The S3 object model behind the emulator's read-only S3 subset.

A :class:`_Bucket` lists the keys renders will ever write to it (``progress.json`` from the
start, the output once done); what a read sees at an instant is decided then, as an
:class:`_S3Object`: the ``progress.json`` document Remotion writes, or a placeholder output
of the render's size. Also here: S3's timestamps, continuation tokens, ``Range`` parsing,
and the XML results and errors. The requests themselves are served by
:mod:`devtools.emulator.s3_requests`.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import math
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from xml.sax.saxutils import escape as _xml_escape

from devtools.emulator.constants import ACCOUNT_ID
from devtools.emulator.renders import _evaluate, _Render
from devtools.emulator.responses import InvokeResult, _dumps

S3_MAX_KEYS: Final = 1000
_S3_XMLNS: Final = "http://s3.amazonaws.com/doc/2006-03-01/"
_XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
_S3_OWNER_ID: Final = hashlib.sha256(ACCOUNT_ID.encode()).hexdigest()
_ZEROS: Final = bytes(1 << 20)
_MEDIA_TYPES: Final[Mapping[str, str]] = {
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
}


@dataclass(frozen=True, slots=True)
class _S3Object:
    """One object as a read sees it at a given instant; its content is ``body`` + zeros."""

    key: str
    body: bytes
    padding: int
    etag: str
    last_modified_ms: int
    content_type: str

    @property
    def size(self) -> int:
        return len(self.body) + self.padding


@dataclass(slots=True)
class _Bucket:
    """The keys renders will ever write to one bucket; what is visible is decided per read.

    ``start`` only appends (O(1) on the hot path); a listing sorts lazily, which timsort
    does in about linear time since all but the newest keys are already in order.
    """

    created_ms: int
    keys: list[str] = field(default_factory=list)
    is_sorted: bool = True
    progress: dict[str, _Render] = field(default_factory=dict)
    outputs: dict[str, list[_Render]] = field(default_factory=dict)

    def add_progress(self, key: str, render: _Render) -> None:
        self._add_key(key)
        self.progress[key] = render

    def add_output(self, key: str, render: _Render) -> None:
        self._add_key(key)
        self.outputs.setdefault(key, []).append(render)

    def _add_key(self, key: str) -> None:
        if key in self.progress or key in self.outputs:
            return
        if self.keys and key < self.keys[-1]:
            self.is_sorted = False
        self.keys.append(key)

    def sorted_keys(self) -> list[str]:
        if not self.is_sorted:
            self.keys.sort()
            self.is_sorted = True
        return self.keys


def _progress_key(render_id: str) -> str:
    return f"renders/{render_id}/progress.json"


def _quoted_md5(data: bytes) -> str:
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def _progress_document(render: _Render, with_metadata: bool) -> bytes:
    """``renders/<id>/progress.json`` as Remotion's start and launch write it.

    Same keys and order as ``makeInitialOverallRenderProgress`` (serverless/src/
    overall-render-progress.ts). The real start handler writes ``renderMetadata: null``; the
    launch function fills it in once the composition is validated. There is no top-level
    ``renderId`` or ``startedDate``: they live in ``renderMetadata``, and the id is in the key.
    """
    started = render.started_epoch_ms
    validated = started + int(render.metadata_delay_s * 1000) if with_metadata else None
    return _dumps(
        {
            "cancellationEnabled": render.cancellation_enabled,
            "chunks": [],
            "framesRendered": 0,
            "framesEncoded": 0,
            "combinedFrames": 0,
            "timeToCombine": None,
            "timeToEncode": None,
            "lambdasInvoked": 0,
            "retries": [],
            "postRenderData": None,
            "timings": [],
            "renderMetadata": render.metadata if with_metadata else None,
            "errors": [],
            "fatalErrorTimestamp": None,
            "timeToRenderFrames": None,
            "timeoutTimestamp": started + int(render.timeout_s * 1000),
            "functionLaunched": started,
            "serveUrlOpened": validated,
            "compositionValidated": validated,
            "receivedArtifact": [],
        }
    )


def _output_object(key: str, writers: Sequence[_Render], now_mono: float) -> _S3Object | None:
    """The output at ``key``: written by the render that finished last, if any has."""
    latest: _Render | None = None
    latest_done_at = -math.inf
    for render in writers:
        done_at = render.started_mono + render.run_s
        if done_at >= latest_done_at and _evaluate(render, now_mono).done:
            latest, latest_done_at = render, done_at
    if latest is None:
        return None
    extension = key.rsplit(".", 1)[-1].lower() if "." in key else ""
    identity = f"{latest.render_id}/{key}/{latest.output_size}".encode()
    return _S3Object(
        key=key,
        body=b"",
        padding=latest.output_size,
        etag=_quoted_md5(identity),
        last_modified_ms=latest.started_epoch_ms + int(latest.run_s * 1000),
        content_type=_MEDIA_TYPES.get(extension, "application/octet-stream"),
    )


def _iso_ms(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms // 1000)) + (
        f".{epoch_ms % 1000:03d}Z"
    )


def _http_date(epoch_ms: int) -> str:
    return email.utils.formatdate(epoch_ms // 1000, usegmt=True)


def _successor(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < sys.maxunicode:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


def _encode_token(kind: str, marker: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}{marker}".encode()).decode()


def _decode_token(token: str) -> tuple[str, str] | None:
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii")).decode()
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not raw or raw[0] not in "kp":
        return None
    return raw[0], raw[1:]


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
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


def _s3_result(
    status: int,
    body: bytes,
    *,
    content_type: str = "application/xml",
    headers: tuple[tuple[str, str], ...] = (),
    padding: int = 0,
) -> InvokeResult:
    request_id = secrets.token_hex(8).upper()
    return InvokeResult(
        status,
        body,
        (("x-amz-request-id", request_id), *headers),
        content_type,
        padding,
    )


def _s3_error(status: int, code: str, message: str, **details: str) -> InvokeResult:
    extra = "".join(f"<{name}>{_xml_escape(value)}</{name}>" for name, value in details.items())
    body = (
        f"{_XML_DECLARATION}<Error><Code>{code}</Code><Message>{_xml_escape(message)}</Message>"
        f"{extra}<HostId>lambda-emulator</HostId></Error>"
    )
    return _s3_result(status, body.encode())


def _no_such_bucket(bucket: str) -> InvokeResult:
    return _s3_error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)


def _s3_invalid_argument(message: str, name: str, value: str) -> InvokeResult:
    return _s3_error(400, "InvalidArgument", message, ArgumentName=name, ArgumentValue=value)
