"""Secrets come from the environment or .env and never show in reprs, logs or errors."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from retreasure import log
from retreasure.http.client import HttpError
from retreasure.settings import Settings


def test_env_and_dotenv_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("RETREASURE_LAKE_URI=/data/lake\nRETREASURE_SHOPIFY__ACCESS_TOKEN=from-dotenv-123\n")
    monkeypatch.setenv("RETREASURE_SHOPIFY__ACCESS_TOKEN", "from-env-456")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.lake_uri == "/data/lake"
    assert settings.shopify.access_token.get_secret_value() == "from-env-456", "the environment wins over .env"
    assert "from-env-456" not in repr(settings) and "from-env-456" not in str(settings.model_dump())


def test_abfss_lake_with_storage_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETREASURE_LAKE_URI", "abfss://lake@account.dfs.core.windows.net/retreasure")
    monkeypatch.setenv("RETREASURE_STORAGE_OPTIONS", '{"account_key": "very-secret-key"}')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.delta_storage_options() == {"account_key": "very-secret-key"}
    assert "very-secret-key" not in repr(settings)
    with pytest.raises(ValueError):
        Settings(_env_file=None, lake_uri="ftp://nope/lake")  # type: ignore[call-arg]


def test_logs_and_errors_mask_secret_values() -> None:
    Settings(_env_file=None, ebay={"access_token": "tok-very-secret-999"})  # type: ignore[call-arg]
    stream = io.StringIO()
    log.configure("INFO", stream)
    logger = log.get_logger("test")
    logger.info("calling with tok-very-secret-999", extra={"header": "Authorization: Bearer abc.def"})
    try:
        raise RuntimeError("failed with tok-very-secret-999")
    except RuntimeError:
        logger.exception("boom")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = stream.getvalue()
    assert "tok-very-secret-999" not in text and "abc.def" not in text
    assert lines[0]["msg"] == "calling with ***" and lines[1]["level"] == "error"
    assert "tok-very-secret-999" not in str(HttpError("ebay", "401 for tok-very-secret-999"))
    logging.getLogger("retreasure").handlers.clear()
