"""The ASGI application: its routes, and the limits every request is held to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from shared import aws
from shared.frozen_heap import freeze_start_up_heap
from shared.log import configure_logging, get_logger
from shared.settings import get_settings
from web import api, console, health, remotion_webhooks

log = get_logger(__name__)


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused past ``limit`` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    configure_logging()
    # With the S3 clients that webhooks (the output's size) and download links use.
    freeze_start_up_heap("S3", lambda pool: aws.s3_client(pool.region, pool.endpoint_url))
    log.info("web process started")
    yield
    log.info("web process stopped")


def create_app() -> FastAPI:
    # FastAPI's /docs and /redoc load their scripts from a CDN: the API serves /v1/docs.
    app = FastAPI(title="renderq", lifespan=_lifespan, docs_url=None, redoc_url=None)
    app.include_router(api.router)
    app.include_router(console.router)

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSONResponse:
        """Redis and the database answer: the load balancer's probe."""
        report = await run_in_threadpool(health.check)
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    @app.post("/webhooks/remotion", tags=["remotion"], include_in_schema=False)
    async def remotion_webhook(request: Request) -> JSONResponse:
        """Remotion's success/error/timeout webhook (``remotion_webhooks``)."""
        try:
            body = await read_body(request, get_settings().webhook_max_body_bytes)
        except BodyTooLarge:
            return JSONResponse({"detail": "body too large"}, status_code=413)
        receipt = await run_in_threadpool(
            remotion_webhooks.receive, body, request.headers.get("x-remotion-signature")
        )
        return JSONResponse({"detail": receipt.detail}, status_code=receipt.status)

    return app
