"""The HTTP server under the API: uvicorn's h11 protocol, with the size limits answered as problem documents.

uvicorn answers a request head its parser refuses (too long to buffer, or not HTTP) with a text/plain 400 before
the application sees it. Here that answer is the problem document the API gives for every other error: 414 for
a URL over the limit, 431 for headers over theirs, 400 for anything malformed. After answering, the connection
reads and drops what the client is still sending for a moment before closing, so that a client busy writing a
huge URL receives the answer instead of a connection reset.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from retreasure.serving.api.limits import MAX_HEAD_BYTES, refused_head
from retreasure.serving.api.problems import MEDIA_TYPE, problem_body

# How long a refused connection keeps draining what the client sends before it closes.
LINGER_SECONDS = 2.0


class ProblemH11Protocol(H11Protocol):
    """h11 with the refusal of a bad request head sent as problem+json."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:  # the answer is sent: the rest of a refused request is drained unread
            return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        buffered, _ = self.conn.trailing_data
        status, detail = refused_head(buffered)
        content = json.dumps(problem_body(status, detail)).encode()
        headers = [
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(len(content)).encode()),
            (b"connection", b"close"),
        ]
        reason = HTTPStatus(status).phrase.encode()
        for event in (h11.Response(status_code=status, headers=headers, reason=reason), h11.Data(data=content)):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        self._refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def server_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the API: the problem-answering protocol and its head limit."""
    return uvicorn.Config(
        app, host=host, port=port, http=ProblemH11Protocol, h11_max_incomplete_event_size=MAX_HEAD_BYTES, **options
    )
