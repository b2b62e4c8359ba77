"""Masks known secret values in any text bound for a log, an error or a table."""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
# Header values that are credentials whatever their value; masked even when never registered.
_AUTH_HEADER = re.compile(
    r"(?i)(authorization|x-api-key|x-shopify-access-token)(['\"]?\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+"
)


def register_secret(value: str) -> None:
    """Remember a secret so that ``redact`` hides it; very short values would mask ordinary text."""
    global _pattern
    if len(value) < 4:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{MASK}", text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message so that no handler ever sees a clear secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
