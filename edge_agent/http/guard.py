"""The request guard: what protects the agent's API from the browser of the person
using it (docs/agent.md, "Security").

A web page the operator opens can make their browser send requests to the agent on
127.0.0.1: plain cross-site requests (an HTML form, a bodyless ``fetch``) and, through
DNS rebinding (a name of the attacker's that resolves to 127.0.0.1), requests whose
answers it can read. The guard, a pure ASGI middleware in front of every route:

- a request with the valid bearer token passes (a browser never adds it by itself);
- any other request must name the agent in its Host header: a configured name
  (localhost, 127.0.0.1, [::1], ``[http] host``, ``[http] allowed_hosts``) or an IP
  address literal (a rebinding attack needs a DNS name of its own), else 400;
- a state-changing one (POST, PUT, PATCH, DELETE) is refused with 401 when a token is
  configured; without one it must be ``Content-Type: application/json`` (which no form
  can send and a cross-site ``fetch`` only after a CORS preflight the agent never
  grants), else 415; and its Origin, when present, must be the Host, else 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def host_name(host: str) -> str:
    """The name part of a Host header (no port, no brackets, lower case, no final dot)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class RequestGuard:
    """ASGI middleware. ``names``: the host names this agent answers to besides IP
    literals; ``token``: the ``[http] token`` (None: none configured)."""

    def __init__(self, app: ASGIApp, *, names: Iterable[str], token: bytes | None) -> None:
        self.app = app
        self.names = frozenset(host_name(n) for n in names if n not in _WILDCARDS)
        self.token = token

    @classmethod
    def names_for(cls, host: str, allowed_hosts: Iterable[str]) -> list[str]:
        return [*LOOPBACK_NAMES, host, *allowed_hosts]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, detail, extra = refusal
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers + extra})
        await send({"type": "http.response.body", "body": body})

    def refusal(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """Why this request is refused (status, detail, extra headers), or None."""
        headers: dict[bytes, bytes] = {}
        for key, value in scope.get("headers", ()):
            headers.setdefault(key.lower(), value)
        if self._has_token(headers.get(b"authorization", b"")):
            return None
        host = headers.get(b"host", b"").decode("latin-1")
        name = host_name(host)
        if not name or not (name in self.names or _is_ip_literal(name)):
            return (
                400,
                f"Host {host!r} is not a name of this agent: use its address, or add the"
                " name to [http] allowed_hosts",
                [],
            )
        if scope.get("method", "GET").upper() not in STATE_CHANGING:
            return None
        if self.token is not None:
            return (
                401,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
                [(b"www-authenticate", b"Bearer")],
            )
        media = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip()
        if media.lower() != "application/json":
            return (
                415,
                "a request that changes state must be Content-Type: application/json"
                f" (got {media or 'none'})",
                [],
            )
        origin = headers.get(b"origin")
        if origin is not None:
            given = origin.decode("latin-1")
            parts = urlsplit(given)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
                return (403, f"Origin {given!r} is not this agent ({host!r})", [])
        return None

    def _has_token(self, header: bytes) -> bool:
        if self.token is None:
            return False
        scheme, _, given = header.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)
