"""Errors as RFC 9457 problem details: one JSON shape (type, title, status, detail, instance) for every failure.

Clients branch on ``type`` (a URN that names the problem) and ``status``; ``detail`` is for people and never
carries a secret (it is passed through the log masker). No rejected value is ever sent back: a detail names the
parameter and says why, because the value may be a credential pasted in the wrong place. For the same reason
``instance`` is the path of the route that answered as the API documents it (``/v1/marketing/audiences/{name}/
members``), never the client's own text, and is left out when no route matched.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    413: "content-too-large",
    414: "uri-too-long",
    422: "invalid-request",
    431: "header-fields-too-large",
    500: "internal-error",
}
# Shortest rejected input worth looking for in a message: shorter ones are ordinary words and digits.
_ECHO_MIN_CHARS = 4


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


def invalid_parameter(name: str, why: str, place: str = "query", error_type: str = "value_error") -> Problem:
    """A 422 about one parameter, in the same shape as a validation error: its name and why, never its value."""
    error = {"loc": [place, name], "msg": why, "type": error_type}
    return Problem(422, f"{name}: {why}", "invalid-request", errors=[error])


def problem_body(status: int, detail: str, kind: str | None = None, instance: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + (kind or _TYPE_BY_STATUS.get(status, "error")),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": redact(detail),
    }
    if instance is not None:
        body["instance"] = instance
    return body


def route_path(scope: Mapping[str, Any]) -> str | None:
    """The documented path of the route that matched the request (its template), None when none did."""
    return getattr(scope.get("route"), "path_format", None)


def problem_response(
    request: Request,
    status: int,
    detail: str,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = {**problem_body(status, detail, kind, route_path(request.scope)), **extensions}
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(request, exc.status, exc.detail, exc.kind, exc.headers, **exc.extensions)


_HTTP_DETAIL = {
    404: "no route answers this path; the routes are listed at /docs",
    405: "this route does not answer this method (see the Allow header)",
}


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # Starlette's own 404 and 405 say no more than their title; a clearer sentence helps.
    detail = str(exc.detail)
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = _HTTP_DETAIL.get(exc.status_code, detail)
    return problem_response(request, exc.status_code, detail, headers=dict(exc.headers or {}))


def _safe_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """One validation error as where and why, with any copy of the rejected input taken out of the message."""
    loc = [str(part) for part in error.get("loc", ())]
    message = str(error.get("msg", ""))
    rejected = error.get("input")
    if isinstance(rejected, str) and len(rejected) >= _ECHO_MIN_CHARS and rejected in message:
        message = "not an accepted value"
    return {"loc": loc, "msg": message, "type": str(error.get("type", ""))}


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI's own body would carry each rejected "input": this one says where and why only.
    errors = [_safe_error(e) for e in exc.errors()]
    where = "; ".join(f"{e['loc'][-1] if e['loc'] else 'request'}: {e['msg']}" for e in errors)
    return problem_response(request, 422, where, "invalid-request", errors=errors)


async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("request failed", exc_info=exc, extra={"path": route_path(request.scope) or "(no route)"})
    return problem_response(request, 500, "the server could not answer this request; it has been logged")


def install(app: FastAPI) -> None:
    """Route every kind of failure to a problem document."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(Exception, _on_error)
