"""Errors as RFC 9457 problem details: one JSON shape (type, title, status, detail, instance) for every failure.

Clients branch on ``type`` (a URN that names the problem) and ``status``; ``detail`` is for people and never
carries a secret (it is passed through the log masker); ``instance`` is the request's path.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from retreasure.log import get_logger
from retreasure.redact import redact

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:retreasure:problem:"
log = get_logger("api")

# The problem type for a bare HTTP status, when the code raising it has nothing more specific to say.
_TYPE_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    422: "invalid-request",
    500: "internal-error",
}


class Problem(Exception):
    """Raised by a route or a dependency to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or _TYPE_BY_STATUS.get(status, "error")
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(
    request: Request,
    status: int,
    detail: str,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = {
        "type": TYPE_PREFIX + (kind or _TYPE_BY_STATUS.get(status, "error")),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": redact(detail),
        "instance": request.url.path,
        **extensions,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(request, exc.status, exc.detail, exc.kind, exc.headers, **exc.extensions)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(request, exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Where and what, never the rejected input itself (it may be a credential pasted in the wrong place).
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)
    return problem_response(request, 422, f"invalid request: {where}", errors=errors)


async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("request failed", exc_info=exc, extra={"path": request.url.path})
    return problem_response(request, 500, "the server could not answer this request; it has been logged")


def install(app: FastAPI) -> None:
    """Route every kind of failure to a problem document."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(Exception, _on_error)
