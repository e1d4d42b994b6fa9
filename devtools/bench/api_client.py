"""The HTTP API benchmark's load generator, run as a process of its own.

    python -m devtools.bench.api_client --url http://127.0.0.1:8000 --renders 3000 \
        --batch 1 --connections 64        # the API key comes in RENDERQ_BENCH_API_KEY

Sends ``POST /v1/renders`` (``--batch 1``) or ``POST /v1/renders:batch`` bodies from one
asyncio loop over ``--connections`` kept-alive HTTP/1.1 connections, each request timed
from send to answer. Plain asyncio streams, not httpx: httpx's pool spent ~10 ms of CPU per
request at 64 connections and was the bottleneck it was meant to measure. A process apart
from the bench, so the server is measured as a separate service would reach it. Prints one
JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any
from urllib.parse import urlsplit


def _body(i: int, tag: str) -> dict[str, Any]:
    return {
        "user_id": f"bench-user-{i % 20}",
        "generation_id": f"bench-{tag}-{i}",
        "composition": "Bench",
        "input_props": {"title": f"bench {i}"},
        "width": 1280,
        "height": 720,
        "fps": 30,
        "duration_in_frames": 30,
    }


class _Connection:
    """One kept-alive HTTP/1.1 connection: write a request, read one answer (Content-Length
    bodies only, which is what uvicorn sends for these answers)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, head: bytes, payload: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(head + payload)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    key = os.environ["RENDERQ_BENCH_API_KEY"]
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    path = "/v1/renders" if args.batch == 1 else "/v1/renders:batch"
    requests: list[tuple[bytes, bytes]] = []
    for start in range(0, args.renders, args.batch):
        items = [_body(i, args.tag) for i in range(start, min(start + args.batch, args.renders))]
        doc: Any = items[0] if args.batch == 1 else {"renders": items}
        payload = json.dumps(doc).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        requests.append((head, payload))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    pending = iter(requests)
    connections = [_Connection(host, port) for _ in range(args.connections)]
    warm = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    # Open every connection (and warm the server's per-process state) before the clock starts.
    await asyncio.gather(*(c.request(warm, b"") for c in connections))

    async def worker(connection: _Connection) -> None:
        for head, payload in pending:
            sent = time.perf_counter()
            status = await connection.request(head, payload)
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    elapsed = time.perf_counter() - started
    for c in connections:
        if c.writer is not None:
            c.writer.close()
    return {"elapsed_s": elapsed, "latencies_s": latencies, "statuses": statuses}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--renders", type=int, required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--tag", default="api")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args))))


if __name__ == "__main__":
    main()
