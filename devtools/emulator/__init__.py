"""A Remotion Lambda emulator that behaves like Remotion's real handlers, on the AWS wire API.

Why this exists: renderq's workers talk to Remotion Lambda only through the unmodified
``remotion_lambda`` client (Lambda ``invoke`` and a little S3). To test and benchmark them
without AWS, something on the other end must behave like the deployed function, especially
where production breaks: a start that succeeds for a render that then fails in ``launch``,
renderers throttled by the account's concurrency, status calls that are themselves throttled,
flaky chunks retried, timeouts, cancellation, webhooks that arrive late, twice or never.
moto cannot (it does not run Lambda code), so this package models Remotion's source
(``/work/notes/remotion-source-notes.md``, ``shared/notes/remotion-lambda-protocol.md``),
each behaviour citing the Remotion file it follows. The product never imports it; tests,
the demo, the benchmark and docker-compose do.

One instance is one AWS account in one region with the function deployed under any name (or
only the ``function_names`` given; memory, disk and timeout come from the name, as
``parse-function-name.ts`` reads it). One port serves Lambda Invoke
(``/2015-03-31/functions/<name>/invocations``), the control API (``/_emulator/...``) and
everything else as path-style S3. Point boto3 at it with ``AWS_ENDPOINT_URL_LAMBDA`` and
``AWS_ENDPOINT_URL_S3`` (signatures are not checked).

What happens, in short: ``start`` checks the version, finds or creates the bucket, checks
``deleteAfter``, writes the initial progress.json and invokes ``launch`` asynchronously.
``launch`` (after a cold start, the browser, the serve URL and the composition, each a
configurable overhead) validates the composition and the payload, writes ``renderMetadata``,
invokes one renderer per chunk, each needing a concurrency slot, combines, uploads the
output and ``postRenderData``, and sends webhooks; failures become fatal progress errors.
``status`` is a model of ``getProgress`` over progress.json. ``speed`` (frames per second
of wall time; default 100) sets how long renders take; the overheads are scaled by
100 / speed, so tests at speed 3000 see them 30 times shorter.

Cheap and deterministic: no thread per render. Each render is a few events on one clock
(a heap); every request first runs the events due by now, so state is derived lazily and
stamped with the time it happened. One scheduler thread wakes only for renders with a
webhook, and a small pool sends webhook HTTP outside the lock.

Layout:

- ``core``: :class:`LambdaEmulator` (constructor, Invoke entry point and concurrency,
  control-API methods); ``server``: the HTTP transport and :class:`EmulatorServer`;
  ``control``: ``/_emulator/*``; ``cli``: ``python -m devtools.emulator``.
- ``start`` and ``routines``: the synchronous routines (start; status, still, info,
  compositions); ``status`` and ``reporting``: getProgress and the parts postRenderData
  shares; ``launch``, ``finish`` and ``uploads``: the launch function (validation to
  renderMetadata; combine, finish, failure, timeout; the progress.json upload loop);
  ``renderers``: renderer invocations, retries, cancellation polling; ``webhooks``:
  signed POSTs with retries and faults.
- ``s3``, ``s3_requests``, ``s3_listing``: objects, the S3 requests, ListObjectsV2.
- ``progress_file``: progress.json as launch keeps and snapshots it; ``render``: one
  render and its renderer runs; ``validation``: launch's checks and the plan; ``site``: the
  emulated bundle's compositions; ``flaky``: is-flaky-error.ts; ``texts``: Remotion's
  messages; ``aws``: regions, prices, function names, URLs; ``jsjson``: JSON.stringify
  bytes and JavaScript number formatting; ``clock``: the event heap and scheduler thread;
  ``concurrency``: the account's slots; ``faults``: every knob (and which are fault
  injections); ``stats``: ``/_emulator/stats``; ``state``, ``constants``, ``responses``.
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
