"""``python -m web``: serve the web process with uvicorn.

SIGTERM stops accepting connections and lets in-flight requests finish for
``WEB_GRACEFUL_TIMEOUT_S`` (uvicorn's graceful shutdown); run several replicas behind a load
balancer for availability. ``WEB_WORKERS`` uvicorn processes share the port (uvicorn's
supervisor restarts one that dies); each has its own engine, Redis client and key cache.
"""

from __future__ import annotations

import uvicorn

from shared.log import configure_logging
from shared.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging()
    uvicorn.run(
        "web.app:create_app",
        factory=True,
        host=settings.web_host,
        port=settings.web_port,
        workers=settings.web_workers,
        timeout_graceful_shutdown=int(settings.web_graceful_timeout_s),
        log_config=None,  # renderq's logging (structlog JSON) is already configured
        access_log=False,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
