"""Refuse requests whose ``Host`` header names another site (DNS rebinding).

A page on ``http://rebind.attacker.example`` whose DNS name is re-pointed at 127.0.0.1 would
otherwise read the local viewer with the browser's blessing: the only thing that tells such a
request apart is its ``Host`` header. Requests (and websockets) naming any host that is not the
address the viewer listens on, a loopback name, or one given with ``--allowed-host`` get 421.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("stepsdk.viewer.hostcheck")
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


def host_name(header: str) -> str:
    """``example.org:8080`` → ``example.org``; ``[::1]:8080`` → ``::1``; lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    name, _, port = header.rpartition(":")
    return name if name and port.isdigit() else header


def allowed_names(listen_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """What a ``Host`` header may name for a viewer listening on ``listen_host``."""
    names = set(LOOPBACK_NAMES) | {host_name(h) for h in extra if h.strip()}
    if listen_host not in WILDCARD_HOSTS:
        names.add(host_name(listen_host) if not listen_host.count(":") > 1 else listen_host.lower())
    return frozenset(names)


class HostCheck:
    """ASGI middleware: 421 Misdirected Request for a ``Host`` outside ``allowed``."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), "")
            if host_name(host) not in self.allowed:
                log.warning(
                    "viewer: refused a request for host %r (use --allowed-host to allow it)", host[:100]
                )
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = (
                    b"421 Misdirected Request: this viewer does not answer for that host name "
                    b"(start it with --allowed-host NAME to allow one)\n"
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 421,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
