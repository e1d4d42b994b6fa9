"""A Remotion-Lambda-compatible emulator that speaks the real AWS Lambda Invoke API.

Why this exists: renderq's workers talk to Remotion Lambda only through the unmodified
``remotion_lambda`` client, which calls ``lambda.invoke`` and parses the body. To test and
benchmark them without AWS we need something on the other end of that HTTP call that
behaves like the deployed function -- including the unpleasant parts (throttling, crashes,
fatal render errors, renders that never finish) -- on demand and deterministically. moto
cannot do this (it does not run Lambda code without Docker), so this package implements the
wire contract documented in ``shared/notes/remotion-lambda-protocol.md`` directly.

Point any boto3 client at it with ``endpoint_url`` or ``AWS_ENDPOINT_URL_LAMBDA``. The
product code never imports this package; tests, the demo and docker-compose do.

The same port also serves the read-only slice of the S3 REST API (path-style) that lets a
client find renders the way it would in Remotion's real bucket: ListBuckets,
GetBucketLocation, HeadBucket, ListObjectsV2, GetObject and HeadObject over
``renders/<renderId>/progress.json`` (from the moment of ``start``) and the output object
(once the render is done). Reach it with ``AWS_ENDPOINT_URL_S3`` or ``endpoint_url``; request
signatures are not checked. Every other path is S3 except ``/2015-03-31/functions/...``
(Lambda) and ``/_emulator/...`` (control API). progress.json has the shape Remotion writes
(``renderMetadata`` holds ``renderId``, ``outName`` and ``startedDate``; there is no top-level
``renderId``); the ``progress_metadata_delay_ms`` fault keeps its ``renderMetadata`` null for
a while after start, as on AWS until the launch function has validated the composition.
``/_emulator/stats`` counts S3 requests by operation in ``s3_calls``.

Renders are not simulated by a background clock: a render is a frozen record of when it
started and how fast it goes, and every status call derives the progress from the elapsed
time. That keeps per-call work tiny (the emulator is used for benchmarks) and avoids any
timer thread that could drift or race with the test that is observing it.

Layout. :class:`LambdaEmulator` (``core``) holds the Lambda routines and the control-API
methods; it is assembled from ``plan`` (start payload -> render record) and ``s3_requests``
(the S3 subset) over the state declared in ``state``. ``renders`` is the render record and
its time-based model, ``progress`` builds the status body, ``s3`` is the S3 object model,
``faults`` the fault configuration and ``responses`` the Invoke answers. ``control``,
``server`` and ``cli`` are the control API, the HTTP transport and
``python -m devtools.emulator``.
"""

from __future__ import annotations

from devtools.emulator.cli import main
from devtools.emulator.constants import REMOTION_VERSION
from devtools.emulator.control import control
from devtools.emulator.core import LambdaEmulator
from devtools.emulator.faults import FAST_REMOTION_WAITS, NO_OVERHEADS
from devtools.emulator.responses import InvokeResult
from devtools.emulator.server import EmulatorServer

__all__ = [
    "FAST_REMOTION_WAITS",
    "NO_OVERHEADS",
    "REMOTION_VERSION",
    "EmulatorServer",
    "InvokeResult",
    "LambdaEmulator",
    "control",
    "main",
]
