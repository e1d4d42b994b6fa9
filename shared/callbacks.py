"""Which callback URLs renderq may call: a producer must not make it call internal services.

A render may name a ``callback_url`` that receives its terminal event. renderq runs inside the
operator's network, so an unchecked URL would let any producer reach internal HTTP services
(metadata endpoints, admin consoles) from renderq's machines. The rules:

* ``https`` always; ``http`` only to a host listed in ``CALLBACK_ALLOWED_HOSTS``;
* no credentials in the URL;
* the host may not be, or resolve to, a loopback, private, link-local, multicast or reserved
  address, unless it is listed in ``CALLBACK_ALLOWED_HOSTS`` (or ``CALLBACK_ALLOW_PRIVATE``).

``check_syntax`` runs when the render is requested (the producer, the worker's limit check);
``resolve_public`` runs again right before every delivery and returns the address to connect
to, which the sender pins (it connects to that address with the host name as SNI and Host),
so a name that resolves to an internal address later (DNS rebinding) is refused, and one that
changes between the check and the connection cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from shared.errors import RenderqError
from shared.settings import Settings, get_settings


def _allowed_hosts(settings: Settings) -> set[str]:
    return {h.strip().lower() for h in settings.callback_allowed_hosts.split(",") if h.strip()}


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not address.is_global or address.is_multicast


def check_syntax(url: str, settings: Settings | None = None) -> str | None:
    """Why ``url`` may not be a callback URL, or None if it may (before any DNS lookup)."""
    settings = settings or get_settings()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    allowed = _allowed_hosts(settings)
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL"
    if parts.scheme == "http" and host not in allowed:
        return "must be https (http only to a host in CALLBACK_ALLOWED_HOSTS)"
    if parts.username or parts.password:
        return "must not carry credentials"
    if host in allowed or settings.callback_allow_private:
        return None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and _internal(literal):
        return "must not point at an internal address (CALLBACK_ALLOWED_HOSTS lists exceptions)"
    if host == "localhost" or host.endswith((".localhost", ".internal", ".local")):
        return "must not point at an internal host (CALLBACK_ALLOWED_HOSTS lists exceptions)"
    return None


class CallbackRefused(RenderqError, ValueError):
    """The callback URL may not be called (now)."""


def resolve_public(url: str, settings: Settings | None = None) -> str | None:
    """The address to connect to for ``url``: raises ``CallbackRefused`` unless the URL
    passes ``check_syntax`` and every address its host resolves to right now is public. None
    for an explicitly allowed host (connect by name)."""
    settings = settings or get_settings()
    reason = check_syntax(url, settings)
    if reason is not None:
        raise CallbackRefused(f"callback_url {reason}")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in _allowed_hosts(settings) or settings.callback_allow_private:
        return None
    # A lookup that fails raises OSError: a transient failure, retried like a refused
    # connection, unlike the refusals below.
    infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if _internal(address):
            raise CallbackRefused(f"callback host {host} resolves to internal address {address}")
    if not addresses:
        raise CallbackRefused(f"callback host {host} has no address")
    return str(addresses[0])
