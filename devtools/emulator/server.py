"""The HTTP transport, and :class:`EmulatorServer` for in-process use.

One port serves everything: ``/2015-03-31/functions/.../invocations`` is Lambda Invoke,
``/_emulator/...`` the control API and every other path S3. The handler is a thin shim
over the transport-free :class:`~devtools.emulator.core.LambdaEmulator`, tuned to answer a
keep-alive request in about a millisecond; :class:`EmulatorServer` runs it in a daemon
thread and hangs up open connections on stop.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import unquote

from devtools.emulator.control import handle_control
from devtools.emulator.core import LambdaEmulator
from devtools.emulator.responses import InvokeResult, api_error
from devtools.emulator.s3 import ZEROS

_INVOKE_PREFIX: Final = "/2015-03-31/functions/"
_INVOKE_SUFFIX: Final = "/invocations"
_CONTROL_PREFIX: Final = "/_emulator/"


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler that writes each response with a single send.

    http.server's usual send_response/end_headers/write sequence sends headers and body
    separately; with Nagle and delayed ACKs every keep-alive request then stalls ~40 ms.
    Building one buffer (and TCP_NODELAY as a belt and braces) keeps a call ~1 ms.
    """

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        emulator = self.server.emulator
        try:
            body = self._read_body()
            path, _, query = self.path.partition("?")
            if path.startswith(_INVOKE_PREFIX):
                if method == "POST" and path.endswith(_INVOKE_SUFFIX):
                    function_ref = unquote(path[len(_INVOKE_PREFIX) : -len(_INVOKE_SUFFIX)])
                    invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
                    result = emulator.invoke(function_ref, body, invocation_type)
                else:
                    result = api_error(
                        404,
                        "UnknownOperationException",
                        {"Type": "User", "message": "Unknown path"},
                    )
            elif path.startswith(_CONTROL_PREFIX):
                result = handle_control(emulator, method, path, body)
            else:
                headers = {
                    name: value
                    for name in (
                        "Content-Type",
                        "Content-Encoding",
                        "Content-Disposition",
                        "x-amz-acl",
                        "x-amz-copy-source",
                    )
                    if (value := self.headers.get(name)) is not None
                }
                result = emulator.s3(method, path, query, self.headers.get("Range"), body, headers)
        except Exception as exc:  # a server must answer rather than drop the connection
            self.close_connection = True
            result = api_error(500, "ServiceException", {"Type": "Service", "Message": repr(exc)})
        self._send(result, with_body=method != "HEAD")
        if self.server.verbose:
            self.log_message('"%s %s" %d', method, self.path, result.status)

    def _send(self, result: InvokeResult, *, with_body: bool = True) -> None:
        lines = [
            f"HTTP/1.1 {result.status} {HTTPStatus(result.status).phrase}",
            f"Content-Type: {result.content_type}",
            f"Content-Length: {len(result.body) + result.padding}",
            f"x-amzn-RequestId: {uuid.uuid4()}",
        ]
        lines += [f"{name}: {value}" for name, value in result.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not with_body:  # HEAD: the headers describe the body that GET would send
            self.wfile.write(head)
            return
        self.wfile.write(head + result.body)
        remaining = result.padding
        while remaining:
            chunk = min(remaining, len(ZEROS))
            self.wfile.write(memoryview(ZEROS)[:chunk])
            remaining -= chunk

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], emulator: LambdaEmulator, verbose: bool) -> None:
        self.emulator = emulator
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Hang up idle keep-alive connections, whose threads would otherwise outlive stop()."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-request are routine (benchmarks, killed workers).
        if isinstance(sys.exc_info()[1], ConnectionError) and not self.verbose:
            return
        super().handle_error(request, client_address)


class EmulatorServer:
    """Run the emulator on a real socket, in a daemon thread, for in-process tests.

    Keyword options are those of :class:`LambdaEmulator` (region, account, function names,
    concurrency, version, speed, ``faults=``...). ``port=0`` picks a free port; read it back
    from :attr:`url` after :meth:`start`. Two servers are two AWS accounts (or regions).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = False,
        **options: Any,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.verbose = verbose
        self.emulator = LambdaEmulator(**options)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._httpd is None:
            raise RuntimeError("EmulatorServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for ``endpoint_url`` / ``AWS_ENDPOINT_URL_LAMBDA``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self so it can be chained."""
        if self._httpd is not None:
            raise RuntimeError("EmulatorServer is already started")
        self._httpd = _Server((self.host, self._requested_port), self.emulator, self.verbose)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="lambda-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, hang up open connections and release the port. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join()
        self.emulator.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
