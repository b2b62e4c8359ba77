"""The HTTP API: gold for fulfillment, marketing, finance and leadership, behind API keys with roles.

``create_app`` builds the FastAPI application over the configured lake; ``retreasure serve`` runs it with
uvicorn. Routes are synchronous (DuckDB and delta-rs block), so FastAPI runs them on its thread pool; each
query opens its own DuckDB connection over just the tables it reads.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from retreasure.lake.store import Lake
from retreasure.log import get_logger
from retreasure.serving.api import problems
from retreasure.serving.api.limits import RequestLimits
from retreasure.serving.api.routes import finance, forecasts, fulfillment, kpis, marketing, products, realtime
from retreasure.serving.api.security import presented_key
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


async def _access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """One log line per request, naming the key by its public id only (never the key)."""
    started = time.perf_counter()
    response = await call_next(request)
    caller = getattr(request.state, "principal", None)
    key = presented_key(request)
    log.info(
        "request",
        extra={
            "method": request.method,
            # The route as documented, not the client's text: a path no route matched may hold anything.
            "path": problems.route_path(request.scope) or "(no route)",
            "status": response.status_code,
            "ms": round((time.perf_counter() - started) * 1000, 1),
            "key_id": caller.key_id if caller else (key_id_of(key) if key else None),
            "role": caller.role if caller else None,
        },
    )
    return response


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API over ``settings``' lake (the environment's settings by default)."""
    settings = settings or get_settings()
    app = FastAPI(
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
    # The limits first, inside the access log: a refused request is still logged.
    app.add_middleware(RequestLimits)
    app.middleware("http")(_access_log)

    @app.get("/health", tags=["health"], summary="Liveness: answers without a key")
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    for router in ROUTERS:
        app.include_router(router)
    return app
