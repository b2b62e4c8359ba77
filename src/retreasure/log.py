"""Structured logging: one JSON object per line, secrets masked before any handler sees them."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retreasure.redact import RedactingFilter, redact

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# A field of a line that skips the whole-line redaction: only values that cannot spell a secret by themselves.
SafeValue = str | int | float | None


class SafeRecord(logging.LogRecord):
    """A record whose fields its caller vouches for: each is the code's own text (a route, a role, a status) or was
    masked on its own (``redact``) before it got here. Its line skips the whole-line redaction pass, most of a
    line's CPU, for lines written once per request (the API's access log)."""

    def __init__(self, name: str, level: int, msg: str, fields: dict[str, SafeValue]) -> None:
        super().__init__(name, level, "", 0, msg, None, None)
        self.fields = fields


def log_safe(logger: logging.Logger, level: int, msg: str, fields: dict[str, SafeValue]) -> None:
    """Log ``msg`` with ``fields`` as a ``SafeRecord`` (see there), without looking up the caller's frame."""
    if logger.isEnabledFor(level):
        logger.handle(SafeRecord(logger.name, level, msg, fields))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),  # a short text: masked here too, whatever filters the handler has
        }
        if isinstance(record, SafeRecord):
            entry.update(record.fields)
            if not record.exc_text:  # every field vouched for: no pass over the whole line
                return json.dumps(entry)
        else:
            entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_text:
            entry["exc"] = record.exc_text
        # Redact the whole line: extra fields can carry secrets as well as the message.
        return redact(json.dumps(entry, default=str))


_default_file: Path | None = None


def log_to_file(path: Path | None) -> None:
    """Where later ``configure()`` calls send the log of this process: a file (the CLI's ``logs/retreasure.log``,
    so that its console shows tables and progress, not JSON), or stderr with None (services, Dagster)."""
    global _default_file
    _default_file = path


def configure(level: str | None = None, stream: Any = None) -> None:
    """Idempotent: the CLI and tests may both call it. ``stream`` wins over the file set by ``log_to_file``."""
    root = logging.getLogger("retreasure")
    root.setLevel((level or os.environ.get("RETREASURE_LOG_LEVEL", "INFO")).upper())
    root.propagate = False
    for previous in list(root.handlers):
        root.removeHandler(previous)
        previous.close()
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    if stream is None and _default_file is not None:
        try:
            _default_file.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(_default_file, encoding="utf-8")  # appends: several commands share it
        except OSError as exc:  # a read-only working folder: the log goes to stderr rather than nowhere
            print(f"cannot write the log to {_default_file} ({exc}); logging to stderr", file=sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr as it is when a record is written, not as it was when the log was configured: a stream swapped in
    meanwhile and closed since (a test's captured output, while a server thread of its still logs a request) is
    not written to."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"retreasure.{name}")
