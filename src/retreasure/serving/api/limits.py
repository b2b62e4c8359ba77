"""How big a request may be, and the answers to one that is bigger: 414, 431 and 413 problem documents.

Two layers apply the same limits. The HTTP protocol (``server.py``) refuses a request head too big to buffer
before any application code runs; this ASGI guard refuses what the protocol let through (a head that arrived
whole in one read, or a server run with another protocol). Either way the client gets problem+json.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse

from retreasure.serving.api.problems import MEDIA_TYPE, Problem, problem_body

# The request target (path and query string), in bytes as sent.
MAX_TARGET_BYTES = 8 * 1024
# All header lines together ("name: value\r\n" each).
MAX_HEADER_BYTES = 16 * 1024
# No route takes a body; a small one is tolerated, a big one refused.
MAX_BODY_BYTES = 64 * 1024
# What the HTTP layer may buffer of a request head: the target and headers at their limits, with the method and
# version around them. Beyond it the head is refused unread.
MAX_HEAD_BYTES = MAX_TARGET_BYTES + MAX_HEADER_BYTES + 64

TARGET_TOO_LONG = f"the request URL (path and query) is longer than {MAX_TARGET_BYTES} bytes"
HEADERS_TOO_LARGE = f"the request headers are larger than {MAX_HEADER_BYTES} bytes together"
BODY_TOO_LARGE = f"the request body is larger than {MAX_BODY_BYTES} bytes"
MALFORMED = "the request is not valid HTTP/1.1"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def oversize(scope: Scope) -> tuple[int, str] | None:
    """Status and detail when a request that reached the application is over a limit; None when within."""
    query: bytes = scope.get("query_string", b"")
    target = len(scope.get("raw_path") or scope["path"].encode()) + (len(query) + 1 if query else 0)
    if target > MAX_TARGET_BYTES:
        return 414, TARGET_TOO_LONG
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    if sum(len(name) + len(value) + 4 for name, value in headers) > MAX_HEADER_BYTES:
        return 431, HEADERS_TOO_LARGE
    length = next((value for name, value in headers if name == b"content-length"), None)
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        return (413, BODY_TOO_LARGE) if length.isdigit() else (400, MALFORMED)
    return None


class RequestLimits:
    """ASGI middleware: a request over a size limit is answered with its problem document, not routed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = oversize(scope)
        if refused is not None:
            status, detail = refused
            response = JSONResponse(
                problem_body(status, detail), status_code=status, media_type=MEDIA_TYPE, headers={"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        await self.app(scope, _bounded(receive), send)


def _bounded(receive: Receive) -> Receive:
    """``receive`` that refuses a body (sent without a length, in chunks) once it grows past the limit."""
    received = 0

    async def bounded() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > MAX_BODY_BYTES:
            raise Problem(413, BODY_TOO_LARGE)
        return message

    return bounded
