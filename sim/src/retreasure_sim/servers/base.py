"""The mechanism under every fake marketplace: a real HTTP server on loopback, routing, credentials,
a clock, and seeded fault bursts (429 and 5xx). A marketplace module only declares routes and bodies.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from retreasure_sim.config import Faults
from retreasure_sim.model import Truth
from retreasure_sim.timeline import Timeline

MAX_BODY = 1 << 20  # requests larger than this are refused: the fakes take queries, not uploads


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]  # last value of each parameter
    headers: dict[str, str]  # lower-cased names
    body: bytes
    match: dict[str, str] = field(default_factory=dict)  # named groups of the route pattern

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode()


Handler = Callable[[Request], Response]


class FakeServer:
    """Base of the fake marketplaces. Subclasses set ``name``, register routes in ``routes()``, and say
    how they refuse credentials and how they answer when throttled or broken."""

    name: ClassVar[str]

    def __init__(
        self,
        truth: Truth,
        credentials: dict[str, str],
        faults: Faults | None = None,
        seed: int = 7,
        clock: datetime | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.truth = truth
        self.timeline = Timeline(truth)
        self.credentials = credentials
        self.faults = faults or Faults()
        self.clock = clock or datetime.combine(truth.end, datetime.max.time(), UTC).replace(microsecond=0)
        self._rng = random.Random(f"{self.name}|{seed}")
        self._burst = 0  # failures still owed in the current burst
        self._burst_status = 0
        self._rested = True  # False once a burst is over: the next request then succeeds
        self._lock = threading.Lock()
        self.requests = 0
        self.statuses: dict[int, int] = {}
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.routes()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- what subclasses provide -----------------------------------------------------------------
    def routes(self) -> None:
        raise NotImplementedError

    def authorised(self, request: Request) -> bool:
        raise NotImplementedError

    def unauthorised(self) -> Response:
        return Response(401, {"error": "invalid credentials"})

    def throttled(self) -> Response:
        return Response(429, {"error": "too many requests"}, {"Retry-After": "1"})

    def server_error(self, status: int) -> Response:
        return Response(status, {"error": "internal error"})

    def bad_request(self, message: str) -> Response:
        return Response(400, {"error": message})

    # -- plumbing --------------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fault(self) -> Response | None:
        """A seeded burst of 429s or 5xx: one to three failures in a row, then at least one success, so a
        client with three retries always gets through, and one without retries does not."""
        with self._lock:
            if self._burst:
                self._burst -= 1
                status = self._burst_status
            elif not self._rested:
                self._rested = True
                return None
            else:
                draw = self._rng.random()
                if draw < self.faults.http_429:
                    status = 429
                elif draw < self.faults.http_429 + self.faults.http_5xx:
                    status = self._rng.choice((500, 502, 503))
                else:
                    return None
                self._burst, self._burst_status = self._rng.randint(0, 2), status
            if self._burst == 0:
                self._rested = False  # the burst is over: the next request succeeds
        return self.throttled() if status == 429 else self.server_error(status)

    def dispatch(self, request: Request) -> Response:
        with self._lock:
            self.requests += 1
        if not self.authorised(request):
            return self.unauthorised()
        for method, pattern, handler in self._routes:
            found = pattern.match(request.path)
            if found and method == request.method:
                failure = self.fault()
                if failure is not None:
                    return failure
                request.match = found.groupdict()
                try:
                    return handler(request)
                except ValueError as exc:
                    return self.bad_request(str(exc))
        return Response(404, {"error": f"no route for {request.method} {request.path}"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle holds the body back ~40 ms a request.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_BODY:
                    self._send(Response(413, {"error": "request body too large"}))
                    return
                body = self.rfile.read(length) if length else b""
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Request(self.command, parts.path, query, headers, body)
                self._send(server.dispatch(request))

            def _send(self, response: Response) -> None:
                payload = response.encode()
                with server._lock:
                    server.statuses[response.status] = server.statuses.get(response.status, 0) + 1
                self.send_response(response.status)
                headers = {"Content-Type": "application/json", **response.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the servers are quiet; their counters say what happened

        return _Handler
