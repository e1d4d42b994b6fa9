"""S3 ListObjectsV2 over a :class:`~devtools.emulator.s3.Bucket`, as S3 answers it.

Prefix, delimiter (common prefixes count towards ``MaxKeys``), ``start-after``, continuation
tokens (opaque: a key or a common prefix to resume after), at most 1,000 keys a page and
``encoding-type=url``. Runs with the emulator's lock held.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from urllib.parse import quote
from xml.sax.saxutils import escape as _xml_escape

from devtools.emulator.responses import InvokeResult
from devtools.emulator.s3 import (
    S3_MAX_KEYS,
    S3_XMLNS,
    XML_DECLARATION,
    Bucket,
    S3Object,
    decode_token,
    encode_token,
    invalid_argument,
    iso_ms,
    s3_result,
    successor,
)


def list_objects_v2(bucket_name: str, bucket: Bucket, params: Mapping[str, str]) -> InvokeResult:
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
        return invalid_argument(
            "Provided max-keys not an integer or within integer range", "max-keys", raw_max_keys
        )
    max_keys = min(max_keys, S3_MAX_KEYS)
    resume = None
    if token is not None:
        resume = decode_token(token)
        if resume is None:
            return invalid_argument(
                "The continuation token provided is incorrect", "continuation-token", token
            )

    contents: list[tuple[str, S3Object]] = []
    common_prefixes: list[str] = []
    last: tuple[str, str] | None = None
    truncated = False
    keys = bucket.sorted_keys()
    if resume is not None and resume[0] == "p":
        bound = successor(resume[1])
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
        if len(contents) + len(common_prefixes) >= max_keys:
            truncated = max_keys > 0
            break
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut < 0:
            contents.append((key, bucket.objects[key]))
            last = ("k", key)
            index += 1
            continue
        common = key[: cut + len(delimiter)]
        common_prefixes.append(common)
        last = ("p", common)
        bound = successor(common)
        index = len(keys) if bound is None else bisect.bisect_left(keys, bound, index)

    def text(value: str) -> str:
        return quote(value, safe="/") if url_encode else _xml_escape(value)

    parts = [
        f'{XML_DECLARATION}<ListBucketResult xmlns="{S3_XMLNS}">',
        f"<Name>{_xml_escape(bucket_name)}</Name><Prefix>{text(prefix)}</Prefix>",
    ]
    if token is not None:
        parts.append(f"<ContinuationToken>{_xml_escape(token)}</ContinuationToken>")
    if truncated and last is not None:
        parts.append(f"<NextContinuationToken>{encode_token(*last)}</NextContinuationToken>")
    parts.append(
        f"<KeyCount>{len(contents) + len(common_prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>"
    )
    if delimiter:
        parts.append(f"<Delimiter>{text(delimiter)}</Delimiter>")
    parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if start_after:
        parts.append(f"<StartAfter>{text(start_after)}</StartAfter>")
    parts.extend(
        f"<Contents><Key>{text(key)}</Key>"
        f"<LastModified>{iso_ms(found.last_modified_ms)}</LastModified>"
        f"<ETag>{_xml_escape(found.etag)}</ETag><Size>{found.size}</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>"
        for key, found in contents
    )
    parts.extend(
        f"<CommonPrefixes><Prefix>{text(common)}</Prefix></CommonPrefixes>"
        for common in common_prefixes
    )
    if url_encode:
        parts.append("<EncodingType>url</EncodingType>")
    parts.append("</ListBucketResult>")
    return s3_result(200, "".join(parts).encode())
