"""The web process: Remotion's webhooks in (and, beside them, the HTTP API and the console).

Neither worker nor shared: an ASGI app (FastAPI on uvicorn, ``python -m web``) that any number
of replicas can serve behind a load balancer; it keeps no state of its own.
"""
