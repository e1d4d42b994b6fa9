"""Fixtures of the emulator fidelity suite: servers, the unmodified client, a webhook sink.

Every test drives the emulator over HTTP. Remotion's Python client is used unmodified,
pointed at the emulator with ``AWS_ENDPOINT_URL_LAMBDA`` / ``AWS_ENDPOINT_URL_S3`` and dummy
credentials; boto3 is used directly only where the client hides what is checked (key
order, headers, 429s). Servers run at speed 3000 with the default overheads (scaled to a
few ms) unless a test needs otherwise, and with Remotion's real-time waits shortened.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError
from remotion_lambda import RemotionClient, RenderMediaParams

from devtools.emulator import FAST_REMOTION_WAITS, REMOTION_VERSION, EmulatorServer

REGION = "us-east-1"
FUNCTION = "remotion-render-4-0-539-mem2048mb-disk2048mb-120sec"
SERVE_URL = "https://remotionlambda-useast1-abc.s3.us-east-1.amazonaws.com/sites/demo/index.html"
BUCKET = "remotionlambda-useast1-emulator"
NO_RETRIES = botocore.config.Config(retries={"total_max_attempts": 1})
S3_CONFIG = botocore.config.Config(
    s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}
)


@functools.cache
def session(region: str = REGION) -> boto3.Session:
    return boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)


def lambda_client(server: EmulatorServer, region: str = REGION) -> Any:
    return session(region).client("lambda", endpoint_url=server.url, config=NO_RETRIES)


def s3_client(server: EmulatorServer, region: str = REGION) -> Any:
    return session(region).client("s3", endpoint_url=server.url, config=S3_CONFIG)


def invoke_raw(server: EmulatorServer, payload: dict[str, Any], function: str = FUNCTION) -> Any:
    """The raw Invoke response: status, headers and the body bytes."""
    response = lambda_client(server).invoke(FunctionName=function, Payload=json.dumps(payload))
    return response, response["Payload"].read()


def invoke(server: EmulatorServer, payload: dict[str, Any], function: str = FUNCTION) -> Any:
    return json.loads(invoke_raw(server, payload, function)[1])


def status_payload(
    render_id: str, bucket: str = BUCKET, version: str = REMOTION_VERSION
) -> dict[str, Any]:
    """What RemotionClient.get_render_progress sends."""
    return {
        "renderId": render_id,
        "bucketName": bucket,
        "type": "status",
        "version": version,
        "logLevel": "info",
        "s3OutputProvider": None,
        "forcePathStyle": False,
    }


def control(server: EmulatorServer, path: str, body: dict[str, Any] | None = None) -> Any:
    from devtools.emulator import control as call

    return call(server.url, path, body)


def wait_for(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


def params(**fields: Any) -> RenderMediaParams:
    defaults: dict[str, Any] = {
        "composition": "Main",
        "force_width": 640,
        "force_height": 360,
        "force_duration_in_frames": 60,
        "out_name": "out-1.mp4",
        "input_props": {"title": "Hello"},
    }
    return RenderMediaParams(**{**defaults, **fields})


def progress_when(client: RemotionClient, started: Any, flag: str, timeout: float = 10.0) -> Any:
    """Poll until ``flag`` is set; a 429 (the account is full: status calls need a slot too)
    is retried, as a poller must."""

    def check() -> Any:
        try:
            progress = client.get_render_progress(started.render_id, started.bucket_name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TooManyRequestsException":
                raise
            return None
        return progress if getattr(progress, flag) else None

    return wait_for(check, timeout)


def raw_progress(server: EmulatorServer, render_id: str, bucket: str = BUCKET) -> Any:
    return invoke(server, status_payload(render_id, bucket))


@pytest.fixture
def make_server() -> Iterator[Callable[..., EmulatorServer]]:
    servers: list[EmulatorServer] = []

    def factory(**options: Any) -> EmulatorServer:
        options.setdefault("speed", 3000)
        options["faults"] = {**FAST_REMOTION_WAITS, **options.get("faults", {})}
        server = EmulatorServer(**options).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., EmulatorServer]) -> EmulatorServer:
    return make_server()


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch) -> Callable[..., RemotionClient]:
    def factory(
        target: EmulatorServer, region: str = REGION, function: str = FUNCTION
    ) -> RemotionClient:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", target.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", target.url)
        return RemotionClient(
            region, SERVE_URL, function, session=session(region), config=NO_RETRIES
        )

    return factory


@pytest.fixture
def client(server: EmulatorServer, make_client: Callable[..., RemotionClient]) -> RemotionClient:
    return make_client(server)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class WebhookSink:
    """A local HTTP server that records webhooks and answers with ``statuses`` in turn."""

    url: str
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, count: int, timeout: float = 10.0) -> list[Received]:
        wait_for(lambda: len(self.received) >= count, timeout)
        return list(self.received)


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    sink: WebhookSink

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with sink.lock:
                status = sink.statuses.pop(0) if sink.statuses else 200
                sink.received.append(
                    Received(self.path, dict(self.headers.items()), body, time.monotonic())
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink = WebhookSink(f"http://127.0.0.1:{httpd.server_address[1]}/hook")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield sink
    httpd.shutdown()
    httpd.server_close()
