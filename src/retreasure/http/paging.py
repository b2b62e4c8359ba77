"""Paginators for the three paging styles our APIs use. Each yields ``(request_url, items)`` per page."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from retreasure.http.client import HttpClient, HttpError


def json_body(client: HttpClient, response: Any) -> Any:
    """The response's JSON, or an error naming the source when the body is not JSON."""
    try:
        return response.json()
    except ValueError as exc:
        raise HttpError(client.source, f"{response.request.url.path}: response is not JSON ({exc})") from exc


def follow_next(
    client: HttpClient, path: str, params: Mapping[str, Any], items_key: str, next_key: str = "next"
) -> Iterator[tuple[str, list[Any]]]:
    """Offset paging driven by the server's ``next`` link (eBay): follow it until it is absent."""
    url: str | None = path
    query: Mapping[str, Any] | None = params
    while url:
        response = client.get(url, params=query)
        body = json_body(client, response)
        yield str(response.request.url), list(body.get(items_key) or [])
        url, query = body.get(next_key), None


def offset_count(
    client: HttpClient,
    path: str,
    params: Mapping[str, Any],
    limit: int,
    items_key: str = "results",
    count_key: str = "count",
) -> Iterator[tuple[str, list[Any]]]:
    """Offset paging with a total and no link (Etsy): advance by ``limit`` until ``offset >= count``."""
    offset = 0
    while True:
        response = client.get(path, params={**params, "limit": limit, "offset": offset})
        body = json_body(client, response)
        items = list(body.get(items_key) or [])
        yield str(response.request.url), items
        offset += limit
        if not items or offset >= int(body.get(count_key) or 0):
            return


def graphql_connection(
    client: HttpClient,
    path: str,
    query: str,
    variables: Mapping[str, Any],
    connection: str,
) -> Iterator[tuple[str, list[Any], Mapping[str, Any]]]:
    """Cursor paging over a GraphQL connection (Shopify): ``first``/``after`` until no next page.

    Yields ``(url, nodes, extensions)`` so the caller can pace on the reported query cost.
    """
    after: str | None = None
    while True:
        response = client.post(path, json={"query": query, "variables": {**variables, "after": after}})
        body = json_body(client, response)
        if body.get("errors"):
            raise HttpError(client.source, f"GraphQL errors: {body['errors']}")
        data = (body.get("data") or {}).get(connection) or {}
        nodes = [edge["node"] for edge in data["edges"]] if "edges" in data else list(data.get("nodes") or [])
        yield str(response.request.url), nodes, body.get("extensions") or {}
        page = data.get("pageInfo") or {}
        if not page.get("hasNextPage"):
            return
        after = page.get("endCursor")
