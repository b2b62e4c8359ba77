"""The HTTP server under the API: uvicorn's httptools protocol, with the size limits answered as problem documents.

httptools parses in C (llhttp): a kept answer costs about half the server CPU it did on uvicorn's pure-Python h11
(bench/api.py prints the CPU per request). uvicorn answers a request head its parser refuses with a text/plain
400 before the application sees it; here that answer is the problem document the API gives for every other
error: 414 for a URL over the limit, 431 for headers over theirs, 400 for anything malformed. After answering,
the connection reads and drops what the client is still sending for a moment before closing, so that a client
busy writing a huge URL receives the answer instead of a connection reset.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from retreasure.serving.api.limits import (
    HEADERS_TOO_LARGE,
    MALFORMED,
    MAX_HEAD_BYTES,
    MAX_TARGET_BYTES,
    TARGET_TOO_LONG,
)
from retreasure.serving.api.problems import MEDIA_TYPE, problem_body

# How long a refused connection keeps draining what the client sends before it closes.
LINGER_SECONDS = 2.0


def problem_response(status: int, detail: str) -> bytes:
    """A whole HTTP/1.1 answer refusing a request: the problem document, and the connection closing."""
    content = json.dumps(problem_body(status, detail)).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: {MEDIA_TYPE}\r\n"
        f"content-length: {len(content)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + content


def linger_then_close(transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
    """End our side now and close once the client had time to read the answer (its writes are drained)."""
    if transport.can_write_eof():
        transport.write_eof()
    loop.call_later(LINGER_SECONDS, transport.close)


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """httptools (llhttp, in C) with the head limits applied as it parses, and refusals sent as problem+json.

    llhttp puts no bound on a request head: the target is counted as it arrives (414 past its limit) and so is
    every read of a head begun in an earlier read (431 once the head passes what the limits allow together)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._refusal: tuple[int, str] | None = None
        self._head_open = False
        self._head_bytes = 0
        self._target_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._refused:  # the answer is sent: the rest of a refused request is drained unread
            return
        counted = self._head_open  # a head begun in an earlier read: this read is head until the head ends
        super().data_received(data)
        if counted and self._head_open and not self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refusal = (431, HEADERS_TOO_LARGE)
                self.send_400_response(HEADERS_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open, self._head_bytes, self._target_bytes = True, 0, 0

    def on_url(self, url: bytes) -> None:
        self._target_bytes += len(url)
        if self._target_bytes > MAX_TARGET_BYTES:
            self._refusal = (414, TARGET_TOO_LONG)
            raise ValueError(TARGET_TOO_LONG)  # stops the parser: uvicorn answers through send_400_response
        super().on_url(url)

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        status, detail = self._refusal or (400, MALFORMED)
        self.transport.write(problem_response(status, detail))
        self._refused = True
        linger_then_close(self.transport, self.loop)


def server_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the API: the problem-answering protocol (the event loop: uvloop when there)."""
    return uvicorn.Config(app, host=host, port=port, http=ProblemHttpToolsProtocol, **options)
