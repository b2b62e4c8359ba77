"""The HTTP API: gold for fulfillment, marketing, finance and leadership, behind API keys with roles.

``create_app`` builds the FastAPI application over the configured lake; ``retreasure serve`` runs it with
uvicorn. Routes are synchronous (DuckDB and delta-rs block), so FastAPI runs them on its thread pool, reading
through the read layer's copies (``serving.read``). Their answers are kept per lake version by the response
cache (``cache.py``), which answers a repeated request on the event loop; the middlewares are plain ASGI, as
Starlette's ``BaseHTTPMiddleware`` costs a task group per request.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI

from retreasure.lake.store import Lake
from retreasure.log import get_logger, log_safe
from retreasure.redact import redact
from retreasure.serving.api import problems
from retreasure.serving.api.cache import ASGIApp, Message, Receive, ResponseCache, Scope, Send, presented_key
from retreasure.serving.api.limits import RequestLimits
from retreasure.serving.api.routes import finance, forecasts, fulfillment, kpis, marketing, products, realtime
from retreasure.serving.auth import key_id_of
from retreasure.settings import Settings, get_settings

log = get_logger("api")
ROUTERS = (
    fulfillment.router,
    marketing.router,
    finance.router,
    kpis.router,
    realtime.router,
    forecasts.router,
    products.router,
)


class AccessLog:
    """ASGI middleware: one log line per request, naming the key by its public id only (never the key)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app answers: an exception escaping it becomes a 500 outside

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            caller = scope.get("state", {}).get("principal")
            if caller:  # the key's id and role as the key store has them: the code's own text
                key_id, role = caller.key_id, caller.role
            else:  # a key refused or absent: its id is the client's text, masked on its own
                key = presented_key(scope)
                shown = key_id_of(key) if key else None
                key_id, role = (redact(shown) if shown else None), None
            # Every field is the code's own text or masked on its own: the line skips the whole-line redaction,
            # which was most of the line's CPU (log.SafeRecord).
            log_safe(
                log,
                logging.INFO,
                "request",
                {
                    "method": redact(scope["method"]),  # the client's text (an ASGI server may pass any)
                    # The route as documented, not the client's text: a path no route matched may hold anything.
                    "path": problems.route_path(scope) or "(no route)",
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                    "key_id": key_id,
                    "role": role,
                },
            )


def create_app(settings: Settings | None = None, access_log: bool = True) -> FastAPI:
    """The API over ``settings``' lake (the environment's settings by default), with or without its access log.

    The access log is still ~40% of the server's CPU for a kept answer (~80 of ~200 us, measured with the HTTP
    server around it; its line is a ``log.SafeRecord``, without the whole-line redaction pass). A server that can
    do without one line per request leaves it out (`serve --no-access-log`); its failures are still logged
    (problems.py)."""
    settings = settings or get_settings()
    app = FastAPI(
        # FastAPI's own OpenTelemetry looks up three global providers on every request to learn that none is set
        # (some 20-30 us of CPU a request, in process); the platform configures none, its access log says what happened.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="ReTreasure API",
        version="1",
        description=(
            "Gold tables for fulfillment, marketing, finance and leadership. Authenticate with an API key "
            "(`Authorization: Bearer <key>` or `X-API-Key`); errors are RFC 9457 problem details; lists are "
            'cursor-paged (`limit`, `cursor`, `next_cursor`, `Link: rel="next"`).'
        ),
    )
    app.state.settings = settings
    app.state.lake = Lake.from_settings(settings)
    problems.install(app)
    # Innermost the cache, behind the limits, inside the access log: a refused or cached request is still logged.
    app.add_middleware(
        ResponseCache,
        routes=[route for router in ROUTERS for route in router.routes],
        lake=app.state.lake,
        max_bytes=settings.serve.cache_megabytes * 1024 * 1024,
        remote_probe_seconds=settings.serve.remote_probe_seconds,
    )
    app.add_middleware(RequestLimits)
    if access_log:
        app.add_middleware(AccessLog)

    @app.get("/health", tags=["health"], summary="Liveness: answers without a key")
    async def health() -> dict[str, Any]:  # on the event loop: liveness does no blocking work to need a thread
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    return app
