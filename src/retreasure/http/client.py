"""The one HTTP client every API connector uses: timeouts, retries with exponential backoff and full
jitter, ``Retry-After``, steady-state pacing, clear errors that name the source and never a credential.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # loaded with the first client: every command loads the connectors, few make requests
    import httpx

from retreasure.log import get_logger
from retreasure.redact import redact, register_secret

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "x-shopify-access-token"})
log = get_logger("http")


class HttpError(Exception):
    """A request that failed for good; the message names the source, the status and what it said."""

    def __init__(self, source: str, message: str, status: int | None = None) -> None:
        super().__init__(redact(f"{source}: {message}"))
        self.source = source
        self.status = status


class AuthError(HttpError):
    """The source refused our credentials: a retry cannot help, a person must fix the secret."""


class QuotaExhausted(HttpError):
    """The source asks us to come back later than a run may wait (a daily quota): stop now, resume next run."""


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    bytes: int = 0
    waited_s: float = 0.0
    last_retry: str | None = None  # why the last retried request was retried, for the run's summary


class Pacer:
    """Keeps requests at or below a steady rate, so a rate limit is met by waiting, not by a 429."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> float:
        if not self.interval:
            return 0.0
        with self._lock:
            now = time.monotonic()
            delay = max(0.0, self._next - now)
            self._next = max(now, self._next) + self.interval
        if delay:
            time.sleep(delay)
        return delay


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: an integer, a decimal ("2.0", Shopify) or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpClient:
    """A source's HTTP session. ``retry_when`` lets a connector mark a 200 as retryable (GraphQL throttling)
    by returning a delay in seconds; ``after_response`` lets it pace on headers (rate-limit budgets)."""

    def __init__(
        self,
        source: str,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        retry_after_max_s: float = 120.0,
        per_second: float | None = None,
        retry_when: Callable[[httpx.Response], float | None] | None = None,
        after_response: Callable[[httpx.Response], float] | None = None,
        stats: RequestStats | None = None,
    ) -> None:
        self.source = source
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self.pacer = Pacer(per_second)
        self.retry_when = retry_when
        self.after_response = after_response
        self.stats = stats or RequestStats()
        for name, value in (headers or {}).items():
            # Whatever a server echoes back, our own credentials never reach a log or an error.
            if name.lower() in CREDENTIAL_HEADERS:
                register_secret(value)
                register_secret(value.split(" ", 1)[-1])
        import httpx

        self._client = httpx.Client(base_url=base_url, headers=dict(headers or {}), timeout=timeout_s)

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random delay up to base * 2^attempt, so retrying clients do not march in step."""
        return random.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**attempt))

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        import httpx

        attempt = 0
        while True:
            self.stats.waited_s += self.pacer.wait()
            self.stats.requests += 1
            delay: float | None
            try:
                response = self._client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                problem, delay, response = f"{type(exc).__name__}: {exc}", self.backoff(attempt), None
            else:
                self.stats.bytes += len(response.content)
                problem, delay = self._judge(response, attempt)
                if problem is None:
                    if self.after_response:
                        self.stats.waited_s += self.after_response(response)
                    return response
            if delay is None or attempt >= self.max_retries:
                status = response.status_code if response is not None else None
                if delay is not None:
                    problem = f"gave up after {attempt} retries: {problem}"
                cls = AuthError if status in (401, 403) else HttpError
                if status in RETRYABLE_STATUS and delay is None:
                    cls = QuotaExhausted
                raise cls(self.source, f"{method} {_path(url)}: {problem}", status)
            attempt += 1
            self.stats.retries += 1
            self.stats.last_retry = redact(problem)[:300]
            log.warning(
                "retrying",
                extra={
                    "source": self.source,
                    "url": _path(url),
                    "attempt": attempt,
                    "delay_s": round(delay, 3),
                    "problem": redact(problem)[:300],
                },
            )
            time.sleep(delay)
            self.stats.waited_s += delay

    def _judge(self, response: httpx.Response, attempt: int) -> tuple[str | None, float | None]:
        """(problem, retry delay): no problem means success; a problem without a delay is final."""
        status = response.status_code
        if status in (401, 403):
            return f"credentials rejected (HTTP {status}): {_excerpt(response)}", None
        if status in RETRYABLE_STATUS:
            hinted = retry_after_seconds(response.headers.get("retry-after"))
            if hinted is not None and hinted > self.retry_after_max_s:
                return (
                    f"HTTP {status}: asked to retry in {hinted:.0f}s, longer than a run waits "
                    f"({self.retry_after_max_s:.0f}s); a later run resumes: {_excerpt(response)}",
                    None,
                )
            if hinted is None and self.retry_when:
                hinted = self.retry_when(response)  # e.g. a THROTTLED body saying how long the bucket needs
            return f"HTTP {status}: {_excerpt(response)}", hinted if hinted is not None else self.backoff(attempt)
        if status >= 400:
            return f"HTTP {status}: {_excerpt(response)}", None
        if self.retry_when:
            hinted = self.retry_when(response)
            if hinted is not None:
                return f"throttled: {_excerpt(response)}", hinted
        return None, None

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self._client.close()


def _path(url: str) -> str:
    """The URL without its query string, which may carry tokens or PII filters."""
    return redact(str(url).split("?", 1)[0])


def _excerpt(response: httpx.Response, limit: int = 300) -> str:
    return redact(response.text[:limit].replace("\n", " "))
