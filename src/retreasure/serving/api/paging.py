"""Cursor pagination: ``limit`` rows at a time, the next page named by an opaque cursor.

Lists are sorted by a stable key before they are cut, so walking the cursors returns every row once. The cursor
is base64url JSON of the offset and a fingerprint of the query's filters: a cursor replayed with other filters
is refused rather than answered with rows of another list.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request, Response

from retreasure.serving.api.problems import Problem, invalid_parameter

PAGING_PARAMS = ("cursor", "limit")


def _fingerprint(request: Request) -> str:
    filters = sorted((k, v) for k, v in request.query_params.multi_items() if k not in PAGING_PARAMS)
    return hashlib.sha256(json.dumps([request.url.path, filters]).encode()).hexdigest()[:16]


def encode_cursor(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "f": fingerprint}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> int:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = state["o"]
        valid = isinstance(offset, int) and offset >= 0 and state["f"] == fingerprint
    except (ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        raise Problem(400, "the cursor is not one this list gave out (or its filters changed)", "invalid-cursor")
    return int(offset)


@dataclass
class PageRequest:
    """The page a client asked for: where to start and how many rows."""

    request: Request
    response: Response
    offset: int
    limit: int

    def page(self, items: Sequence[Any], **extra: Any) -> dict[str, Any]:
        """The body of one page of ``items`` (the whole sorted list), and its Link header."""
        end = self.offset + self.limit
        next_cursor = encode_cursor(end, _fingerprint(self.request)) if end < len(items) else None
        if next_cursor:
            url = self.request.url.include_query_params(cursor=next_cursor, limit=self.limit)
            self.response.headers["Link"] = f'<{url}>; rel="next"'
        return {**extra, "items": list(items[self.offset : end]), "next_cursor": next_cursor}


def page_request(
    request: Request,
    response: Response,
    cursor: Annotated[str | None, Query(description="Opaque cursor from a previous page's next_cursor.")] = None,
    limit: Annotated[int | None, Query(ge=1, description="Rows per page (at most serve.max_page_size).")] = None,
) -> PageRequest:
    """FastAPI dependency: the requested page, bounded by ``serve.page_size`` and ``serve.max_page_size``."""
    serve = request.app.state.settings.serve
    if limit is not None and limit > serve.max_page_size:
        raise invalid_parameter("limit", f"at most {serve.max_page_size}", error_type="less_than_equal")
    offset = decode_cursor(cursor, _fingerprint(request)) if cursor else 0
    return PageRequest(request, response, offset, limit or serve.page_size)
