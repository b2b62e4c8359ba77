"""The shared HTTP client against a real loopback server that answers from a script."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from retreasure.http.client import AuthError, HttpClient, HttpError, QuotaExhausted, retry_after_seconds
from retreasure.http.paging import follow_next, offset_count


class Scripted:
    """Answers each request with the next (status, headers, body) of its script; remembers when it was asked."""

    def __init__(self, script: list[tuple[int, dict[str, str], object]]) -> None:
        self.script = list(script)
        self.calls: list[tuple[float, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.calls.append((time.monotonic(), self.path))
                status, headers, body = owner.script.pop(0) if owner.script else (200, {}, {"ok": True})
                payload = json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def serve() -> Iterator:
    servers: list[Scripted] = []

    def start(script: list[tuple[int, dict[str, str], object]]) -> Scripted:
        servers.append(Scripted(script))
        return servers[-1]

    yield start
    for server in servers:
        server.httpd.shutdown()
        server.httpd.server_close()


def client(server: Scripted, **options: object) -> HttpClient:
    options = {"backoff_base_s": 0.05, "backoff_max_s": 1.0, **options}
    return HttpClient("testsource", server.url, {"Authorization": "Bearer s3cret-token"}, **options)  # type: ignore[arg-type]


def test_5xx_twice_then_success_is_retried_with_growing_delays(serve) -> None:
    server = serve([(503, {}, {"e": 1}), (503, {}, {"e": 2}), (200, {}, {"fine": True})])
    http = client(server, backoff_base_s=0.1)
    http.backoff = lambda attempt: 0.1 * 2**attempt  # the jitter-free schedule, to measure growth
    assert http.get("/x").json() == {"fine": True}
    gaps = [b[0] - a[0] for a, b in zip(server.calls, server.calls[1:], strict=False)]
    assert http.stats.retries == 2 and len(server.calls) == 3
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[1] > gaps[0]


def test_retry_after_is_honoured(serve) -> None:
    server = serve([(429, {"Retry-After": "0.3"}, {"error": "slow down"}), (200, {}, {"ok": 1})])
    http = client(server)
    assert http.get("/x").json() == {"ok": 1}
    assert server.calls[1][0] - server.calls[0][0] >= 0.3


def test_gives_up_after_three_retries_with_a_clear_error(serve) -> None:
    server = serve([(500, {}, {"e": n}) for n in range(10)])
    with pytest.raises(HttpError) as caught:
        client(server).get("/orders?token=abc")
    assert len(server.calls) == 4
    message = str(caught.value)
    assert message.startswith("testsource: GET /orders") and "gave up after 3 retries" in message
    assert "token=abc" not in message


def test_wrong_credentials_fail_at_once_naming_the_source(serve) -> None:
    server = serve([(401, {}, {"error": "invalid token s3cret-token"})])
    with pytest.raises(AuthError) as caught:
        client(server).get("/x")
    assert len(server.calls) == 1 and "testsource" in str(caught.value) and "s3cret-token" not in str(caught.value)


def test_a_daily_quota_retry_after_fails_fast(serve) -> None:
    server = serve([(429, {"Retry-After": "86400"}, {"error": "quota"})])
    started = time.monotonic()
    with pytest.raises(QuotaExhausted, match="longer than a run waits"):
        client(server, retry_after_max_s=60).get("/x")
    assert time.monotonic() - started < 5


def test_pacing_spreads_requests_at_the_configured_rate(serve) -> None:
    server = serve([])
    http = client(server, per_second=20)
    http.get("/x")  # the connection opened first: its setup would delay the first measured arrival, not the others
    for _ in range(6):
        http.get("/x")
    paced = server.calls[1:]
    assert paced[-1][0] - paced[0][0] >= 5 / 20 * 0.95


def test_paginators_follow_next_links_and_counts(serve) -> None:
    server = serve([])
    base = server.url
    server.script = [
        (200, {}, {"items": [1, 2], "next": f"{base}/p?page=2"}),
        (200, {}, {"items": [3]}),
    ]
    assert [items for _, items in follow_next(client(server), "/p", {"page": 1}, "items")] == [[1, 2], [3]]
    server.script = [
        (200, {}, {"count": 5, "results": [1, 2]}),
        (200, {}, {"count": 5, "results": [3, 4]}),
        (200, {}, {"count": 5, "results": [5]}),
    ]
    pages = list(offset_count(client(server), "/r", {}, limit=2))
    assert [items for _, items in pages] == [[1, 2], [3, 4], [5]]
    assert "offset=4" in server.calls[-1][1]


def test_retry_after_formats() -> None:
    assert retry_after_seconds("2") == 2.0 and retry_after_seconds("2.0") == 2.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
