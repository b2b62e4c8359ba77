"""Answers computed once per lake version: the API's response cache, with ETags and 304.

A read route's answer depends only on its path and query, on the caller's role (operations keys see clear ship-to
addresses) and on the lake's tables as of their versions. So the first request computes it through the app as
always, while the read layer records the version of every table read (``read.recording``); the body is kept as
the bytes that were sent, with an ETag (a hash of those bytes), under (path, query, role, host). Later requests
for the same key are answered from the kept bytes on the event loop (no thread hop, no DuckDB) for as long as
every recorded table is still at its recorded version: asked of the lake on each request (a look at the Delta
log's tail, a few stats on a local lake), so a build's commit is seen by the very next request. On remote
storage, where a look is a round trip, a table's version is looked at most every ``remote_probe_seconds``.

Nothing about access is cached away: the key is authenticated and the route's roles checked before a kept answer
is given, against ``ops.api_keys`` at its current version (kept per version by ``auth``; read on a thread when
it moved). A request the cache does not answer (no key, an unknown or revoked key, a role not admitted, an
answer to compute) goes to the app, which answers, and refuses, exactly as without the cache. Only 200 answers
to GET are kept. Concurrent requests for an answer being computed wait for it instead of computing it again.

An answer that depends on the wall clock as well (real time's freshness) is marked with ``wall_clock(seconds)``
and kept that long at most: its body says when it was made (``generated_at``).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.routing import BaseRoute, Match

from retreasure.lake.store import Lake, TableRef
from retreasure.serving import read
from retreasure.serving.api.security import Require, allowed
from retreasure.serving.auth import Principal, authenticate, authenticate_kept

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Key = tuple[str, tuple[tuple[str, str], ...], str, str]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

# Clients keep the answer but ask again each time (with If-None-Match); no shared cache keeps a keyed answer.
CACHE_CONTROL = (b"cache-control", b"private, no-cache")
VARY = (b"vary", b"Authorization, X-API-Key")
_WALL_CLOCK = "__cache_seconds__"
_UNSEEN = object()
_PATHS_KEPT = 4096


def wall_clock(seconds: float) -> Callable[[Endpoint], Endpoint]:
    """Mark a route whose answer also depends on the time it is made: kept ``seconds`` at most."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _WALL_CLOCK, seconds)
        return endpoint

    return mark


@dataclass
class Entry:
    """One kept answer: the bytes sent, the headers sent with them, and the table versions it was made from."""

    body: bytes
    headers: list[tuple[bytes, bytes]]
    etag: bytes
    versions: dict[TableRef, int | None]
    expires: float | None  # monotonic time, for answers that depend on the wall clock
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.body) + sum(len(k) + len(v) for k, v in self.headers) + 64 * len(self.versions) + 256


class ResponseStore:
    """Kept answers by key, least recently used dropped first once their bytes pass ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """The bytes the kept answers take, as counted against ``max_bytes``."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Key, entry: Entry) -> None:
        if entry.size > self.max_bytes // 8:  # one huge page would push out everything else: not kept
            return
        with self._lock:
            self._drop(key)
            self._entries[key] = entry
            self._bytes += entry.size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def discard(self, key: Key, entry: Entry) -> None:
        """Drop ``entry`` if it is still the one kept under ``key``."""
        with self._lock:
            if self._entries.get(key) is entry:
                self._drop(key)

    def _drop(self, key: Key) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size


class VersionProbe:
    """Whether tables are still at the versions an answer was made from: on a local lake one stat per table on
    every look (is its next commit file there?); on remote storage, where that is a listing round trip, a
    table's version asked of the lake at most every ``interval`` seconds."""

    def __init__(self, lake: Lake, remote_interval: float) -> None:
        self.lake = lake
        self.interval = remote_interval
        self._seen: dict[TableRef, tuple[float, int | None]] = {}

    def current(self, versions: Iterable[tuple[TableRef, int | None]]) -> bool:
        """Whether every table is still at the given version."""
        for ref, version in versions:
            moved = self.lake.committed_since(ref, version)
            if moved or (moved is None and self._remote_version(ref) != version):
                return False
        return True

    def _remote_version(self, ref: TableRef) -> int | None:
        now = time.monotonic()
        seen = self._seen.get(ref)
        if seen is None or now - seen[0] >= self.interval:
            seen = self._seen[ref] = (now, self.lake.version(ref))
        return seen[1]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def presented_key(scope: Scope) -> str | None:
    """The API key in the request's headers, read as ``security.presented_key`` reads it."""
    authorization = (_header(scope, b"authorization") or b"").decode("latin-1")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return (_header(scope, b"x-api-key") or b"").decode("latin-1") or None


def matches_etag(if_none_match: bytes | None, etag: bytes) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, as RFC 9110 asks for GET)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")]
    return b"*" in tags or etag in tags


class ResponseCache:
    """ASGI middleware: a read route's 200 answer kept per (path, query, role, host) and table versions."""

    def __init__(
        self, app: ASGIApp, routes: list[BaseRoute], lake: Lake, max_bytes: int, remote_probe_seconds: float
    ) -> None:
        self.app = app
        self.routes = routes
        self.lake = lake
        self.store = ResponseStore(max_bytes)
        self.probe = VersionProbe(lake, remote_probe_seconds)
        self._computing: dict[Key, asyncio.Event] = {}
        self._by_path: dict[str, tuple[BaseRoute, str] | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        found = await self._route(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        route, principal = found
        key = self._cache_key(scope, principal)
        # For the access log, as the app would set them.
        scope["route"] = route
        scope.setdefault("state", {})["principal"] = principal
        while True:
            entry = self.store.get(key)
            if entry is not None:
                if self._fresh(entry):
                    await self._answer(scope, send, entry)
                    return
                self.store.discard(key, entry)
            computing = self._computing.get(key)
            if computing is None:
                break
            await computing.wait()  # then look again: kept by the request that computed it, or compute it here
        done = self._computing[key] = asyncio.Event()
        try:
            await self._compute(scope, receive, send, key, getattr(route.endpoint, _WALL_CLOCK, None))
        finally:
            del self._computing[key]
            done.set()

    async def _route(self, scope: Scope) -> tuple[BaseRoute, Principal] | None:
        """The read route the request names and its authenticated caller, if the caller's role may read it."""
        found = self._by_path.get(scope["path"], _UNSEEN)
        if found is _UNSEEN:
            found = self._by_path[scope["path"]] = self._match(scope)
            if len(self._by_path) > _PATHS_KEPT:  # paths carry names and SKUs: not kept without end
                self._by_path.clear()
        key = presented_key(scope)
        if found is None or key is None:
            return None
        route, area = found
        principal = authenticate_kept(self.lake, key)
        if principal is None:  # the key table moved (or the key is not valid): read off the event loop
            principal = await anyio.to_thread.run_sync(authenticate, self.lake, key)
        if principal is None or not allowed(principal.role, area):
            return None  # the app answers (and refuses) as it does without the cache
        return route, principal

    def _match(self, scope: Scope) -> tuple[BaseRoute, str] | None:
        """The read route of a GET to the scope's path, and the area whose roles it admits."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                area = next((d.dependency.area for d in getattr(route, "dependencies", ()) if _is_require(d)), None)
                return (route, area) if area is not None else None
        return None

    @staticmethod
    def _cache_key(scope: Scope, principal: Principal) -> Key:
        query = scope.get("query_string", b"").decode("latin-1")
        # Sorted by name only: a repeated parameter keeps its order, which decides the value the route takes.
        params = tuple(sorted(parse_qsl(query, keep_blank_values=True), key=lambda item: item[0]))
        # The host is part of the answer: a next-page Link is an absolute URL.
        host = (_header(scope, b"host") or b"").decode("latin-1")
        return scope["path"], params, principal.role, host

    def _fresh(self, entry: Entry) -> bool:
        if entry.expires is not None and time.monotonic() >= entry.expires:
            return False
        return self.probe.current(entry.versions.items())

    async def _answer(self, scope: Scope, send: Send, entry: Entry) -> None:
        if matches_etag(_header(scope, b"if-none-match"), entry.etag):
            headers = [(b"etag", entry.etag), CACHE_CONTROL, VARY]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
        await send({"type": "http.response.body", "body": entry.body})

    async def _compute(self, scope: Scope, receive: Receive, send: Send, key: Key, seconds: float | None) -> None:
        """Run the app, keep a 200 answer with the versions it read, and send it (a 304 if the client has it)."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        with read.recording() as versions:
            await self.app(scope, receive, capture)
        assert start is not None, "the app sent no answer"
        body = b"".join(chunks)
        # Kept only when made from known versions: an answer that read no table, or one table at two versions,
        # has nothing that would tell when it goes stale.
        if start["status"] != 200 or not versions or read.MIXED in versions.values():
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        etag = b'"' + hashlib.blake2b(body, digest_size=16).hexdigest().encode() + b'"'
        headers = [*start.get("headers", []), (b"etag", etag), CACHE_CONTROL, VARY]
        entry = Entry(body, headers, etag, dict(versions), time.monotonic() + seconds if seconds else None)
        self.store.put(key, entry)
        await self._answer(scope, send, entry)


def _is_require(dependency: Any) -> bool:
    return isinstance(getattr(dependency, "dependency", None), Require)
