"""Who may call what: API keys from the request, and the declarative map of areas to roles.

A key comes as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Without a valid key the answer is 401
(with a ``WWW-Authenticate`` challenge); with a key whose role does not cover the area, 403. ``admin`` may call
every area but sees ship-to addresses as tokens like everyone else: clear PII goes to operations keys only.
"""

from __future__ import annotations

from fastapi import Request

from retreasure.serving.api.problems import Problem
from retreasure.serving.auth import ROLES, Principal, authenticate

# Area -> the roles that may read it. admin is added to every area below; nothing else grants access.
ACCESS: dict[str, frozenset[str]] = {
    "fulfillment": frozenset({"operations"}),
    "marketing": frozenset({"marketing"}),
    "finance": frozenset({"finance"}),
    "kpis": frozenset({"leadership", "finance", "marketing", "operations"}),
    "realtime": frozenset({"leadership", "marketing"}),
    "forecasts": frozenset({"leadership", "operations"}),
    # Similar items serve the product pages and merchandising; nothing in them is personal.
    "products": frozenset({"leadership", "marketing", "operations"}),
}
SUPERUSER = "admin"
# The roles that see clear ship-to addresses (they pack the parcels).
CLEAR_PII_ROLES: frozenset[str] = frozenset({"operations"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="retreasure"'}

assert all(roles <= set(ROLES) for roles in ACCESS.values()), "ACCESS names a role that does not exist"


def presented_key(request: Request) -> str | None:
    """The key the request carries, from either header; None when it carries none."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller behind the request's key; 401 without a valid one."""
    key = presented_key(request)
    if key is None:
        raise Problem(
            401,
            "an API key is required: send it with the Bearer scheme of the Authorization header, or as X-API-Key",
            headers=CHALLENGE,
        )
    found = authenticate(request.app.state.lake, key)
    if found is None:
        raise Problem(401, "the API key is unknown or revoked", headers=CHALLENGE)
    request.state.principal = found
    return found


def allowed(role: str, area: str) -> bool:
    return role == SUPERUSER or role in ACCESS[area]


class Require:
    """A dependency that lets through the roles of ``area`` (and admin); 403 for any other valid key.

    Its ``area`` tells the response cache (``cache.py``) which roles a route admits, so that a kept answer goes
    only to a caller this check would let through."""

    def __init__(self, area: str) -> None:
        if area not in ACCESS:
            raise ValueError(f"unknown area {area!r}")
        self.area = area

    def __call__(self, request: Request) -> Principal:
        caller = principal(request)
        if not allowed(caller.role, self.area):
            raise Problem(
                403, f"a {caller.role} key may not read {self.area}; roles allowed: {sorted(ACCESS[self.area])}"
            )
        return caller


def require(area: str) -> Require:
    """The dependency admitting the roles of ``area``."""
    return Require(area)
