"""The bare-webhook ceiling's receiver: an ASGI app that reads a POST's body and answers 200.

Served by uvicorn with the web process's own options (``WEB_WORKERS`` processes, uvloop and
httptools when installed), so the lifecycle-with-webhooks floor counts what receiving one
webhook cannot avoid on this machine (a TCP connection, an HTTP request, a response) and
nothing of renderq's (signature check, rows, outcome).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        while (message := await receive())["type"] != "lifespan.shutdown":
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        message = await receive()
        more = bool(message.get("more_body"))
    body = b'{"detail":"complete"}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"21")],
        }
    )
    await send({"type": "http.response.body", "body": body})
