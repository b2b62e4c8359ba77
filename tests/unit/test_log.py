"""The JSON log: one object per line, with secrets masked; the per-request line's cheaper path keeps both."""

from __future__ import annotations

import io
import json
import logging
import secrets
import sys
from collections.abc import Iterator

import pytest

from retreasure import log
from retreasure.redact import MASK, register_secret


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through the project's handler (JSON formatter, redacting filter) into a string."""
    stream = io.StringIO()
    log.configure("INFO", stream)
    try:
        yield log.get_logger("test"), stream
    finally:
        logging.getLogger("retreasure").handlers.clear()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_safe_line_has_the_shape_of_an_ordinary_one(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    fields: dict[str, log.SafeValue] = {"method": "GET", "path": "/v1/kpis", "status": 200, "ms": 1.5, "role": None}
    logger.info("request", extra=fields)
    log.log_safe(logger, logging.INFO, "request", fields)
    ordinary, safe = lines(stream)
    assert ordinary.pop("ts") and safe.pop("ts")
    assert list(safe.items()) == list(ordinary.items())  # the same keys, in the same order, with the same values
    assert safe["logger"] == "retreasure.test" and safe["level"] == "info"


def test_a_safe_line_is_left_out_below_its_level(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    log.log_safe(logger, logging.DEBUG, "request", {"status": 200})
    assert stream.getvalue() == ""


def test_an_ordinary_line_masks_a_secret_in_any_field(logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    secret = secrets.token_hex(8)
    register_secret(secret)
    logger.info(f"sent {secret}", extra={"url": f"https://example.test/?token={secret}"})
    logger.info("header", extra={"sent": "Authorization: Bearer abc.def"})
    text = stream.getvalue()
    assert secret not in text and "abc.def" not in text
    assert [line["msg"] for line in lines(stream)] == [f"sent {MASK}", "header"]


def test_a_safe_line_masks_its_message_and_an_exception(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """Only the fields are vouched for: the message and a traceback, which may quote anything, are still masked."""
    logger, stream = logged
    secret = secrets.token_hex(8)
    register_secret(secret)
    log.log_safe(logger, logging.INFO, f"request {secret}", {"status": 500})
    record = log.SafeRecord(logger.name, logging.ERROR, "failed", {"status": 500})
    try:
        raise ValueError(f"refused {secret}")
    except ValueError:
        record.exc_info = sys.exc_info()
    logger.handle(record)
    text = stream.getvalue()
    assert secret not in text
    first, second = lines(stream)
    assert first["msg"] == f"request {MASK}" and first["status"] == 500
    assert f"refused {MASK}" in str(second["exc"]) and second["status"] == 500


def test_the_default_log_writes_to_stderr_as_it_is_at_each_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "_default_file", None)
    first, later = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log.configure("INFO")
    try:
        logger = log.get_logger("test")
        logger.info("before")
        first.close()  # swapped and closed meanwhile (a test's captured output): not written to, no error
        monkeypatch.setattr(sys, "stderr", later)
        logger.info("after")
        log.log_safe(logger, logging.INFO, "request", {"path": "/health"})
    finally:
        logging.getLogger("retreasure").handlers.clear()
    assert [line["msg"] for line in lines(later)] == ["after", "request"]
