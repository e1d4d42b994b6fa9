"""The web console: what operators see and do, server-rendered (``/console``).

Jinja2 templates and local static files only (no CDN: the console must work on a closed
network, and ``Content-Security-Policy: default-src 'self'`` forbids anything else). Every
page and feed needs a session (``sessions.py``); every change is a confirmed, CSRF-checked,
audited POST that goes through ``shared.operations``, the code the API and scripts share.
``web/app.py`` includes ``router`` and nothing else of it.
"""

from web.console.routes import router

__all__ = ["router"]
