"""Secrets come from the environment or .env and never show in reprs, logs or errors. A source's settings are
its connector's own section, read from the same places by the same names."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import get_args

import pytest
from pydantic import SecretStr, ValidationError

from retreasure import log
from retreasure.connectors.base import load_sources
from retreasure.connectors.shopify import ShopifySettings
from retreasure.http.client import HttpError
from retreasure.redact import redact
from retreasure.settings import SOURCE_SETTINGS_GROUP, Settings, SourceSettings, declare_section


def test_env_and_dotenv_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("RETREASURE_LAKE_URI=/data/lake\nRETREASURE_SHOPIFY__ACCESS_TOKEN=from-dotenv-123\n")
    monkeypatch.setenv("RETREASURE_SHOPIFY__ACCESS_TOKEN", "from-env-456")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.lake_uri == "/data/lake"
    shopify = settings.source("shopify", ShopifySettings)
    assert shopify.access_token.get_secret_value() == "from-env-456", "the environment wins over .env"
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
    load_sources()  # as every command does first: each connector declares its section's model
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


class LoyaltySettings(SourceSettings):
    """A source the platform has never heard of: its section needs no line in settings.py."""

    base_url: str = "http://127.0.0.1:9999"
    api_token: SecretStr = SecretStr("")
    page_size: int = 50


def test_a_sources_section_is_its_connectors_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("RETREASURE_LOYALTY__PAGE_SIZE=7\nRETREASURE_LOYALTY__API_TOKEN=loyal-dotenv-1234\n")
    monkeypatch.setenv("RETREASURE_LOYALTY__API_TOKEN", "loyal-env-5678")
    monkeypatch.setenv("RETREASURE_HTTP__TIMEOUT_S", "7.5")  # a platform section still reads as before
    settings = Settings(_env_file=env_file, loyalty={"base_url": "http://10.0.0.1"})  # type: ignore[call-arg]
    assert "loyalty" not in Settings.model_fields and settings.http.timeout_s == 7.5
    assert "loyal-env-5678" not in repr(settings) and "loyal-env-5678" not in str(settings.model_dump())
    loyalty = settings.source("loyalty", LoyaltySettings)
    # Arguments over the environment over .env over the model's defaults, as for the platform's own sections.
    assert (loyalty.base_url, loyalty.page_size) == ("http://10.0.0.1", 7)
    assert loyalty.api_token.get_secret_value() == "loyal-env-5678" and "loyal-env-5678" not in repr(loyalty)
    assert redact("token loyal-env-5678 sent") == "token *** sent", "reading the section registers its secrets"
    assert settings.source("absent", LoyaltySettings) == LoyaltySettings(), "an unconfigured section is defaults"
    with pytest.raises(ValueError, match="page_size"):
        Settings(_env_file=None, loyalty={"page_size": "many"}).source("loyalty", LoyaltySettings)  # type: ignore[call-arg]


def test_a_copy_with_a_sources_values_leaves_the_original_alone() -> None:
    settings = Settings(_env_file=None, shopify={"access_token": "shpat-original"})  # type: ignore[call-arg]
    served = settings.with_source("shopify", base_url="http://127.0.0.1:1234")
    assert served.source("shopify", ShopifySettings).base_url == "http://127.0.0.1:1234"
    assert served.source("shopify", ShopifySettings).access_token.get_secret_value() == "shpat-original"
    assert settings.source("shopify", ShopifySettings).base_url == ShopifySettings().base_url


@pytest.mark.parametrize("declared_first", [True, False], ids=["model-then-settings", "settings-then-model"])
def test_a_sections_secrets_are_masked_once_settings_and_model_are_both_known(declared_first: bool) -> None:
    """A token in the environment is masked in every log line, even one written before its connector is imported
    or by a step that never reads the section."""
    name, token = f"loyalty_{declared_first}", f"loyal-token-{declared_first}-4321"
    if declared_first:
        declare_section(name, LoyaltySettings)
    Settings(_env_file=None, **{name: {"api_token": token, "page_size": "25"}})  # type: ignore[arg-type]
    if not declared_first:
        assert redact(f"sent {token}") == f"sent {token}", "no model yet: nothing says which value is a secret"
        declare_section(name, LoyaltySettings)
    assert redact(f"sent {token}") == "sent ***"
    assert redact("page 25 of 25") == "page 25 of 25", "only the section's secrets are masked, not its other values"


def _is_secret(annotation: object) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def test_the_published_section_models_are_the_connectors_own() -> None:
    """The entry points that let settings mask a section without importing its connector name, for every source
    with a section of its own, the very model the connector reads it with."""
    published = {entry.name: entry.load() for entry in entry_points(group=SOURCE_SETTINGS_GROUP)}
    declared = {name: source.settings_model for name, source in load_sources().items()}
    assert published == {name: model for name, model in declared.items() if model is not SourceSettings}
    assert any(_is_secret(f.annotation) for model in published.values() for f in model.model_fields.values())


# A fresh interpreter, as a command starts: nothing has imported the connectors or declared their sections.
MASKED_ON_LOAD = """
import json, sys
from retreasure.redact import MASK, redact
from retreasure.settings import Settings
sections = json.loads(sys.argv[1])
Settings(_env_file=None, **sections)
values = [value for section in sections.values() for value in section.values()]
print(json.dumps({value: redact(value) == MASK for value in values}))
"""


def test_a_sections_secrets_are_masked_as_the_settings_load_before_any_connector_is_imported() -> None:
    """Every secret field every connector declares is masked once the settings are read, and no other value is,
    with no `load_sources()` first: the root command no longer imports the connectors for that."""
    sections: dict[str, dict[str, str]] = {}
    secrets: set[str] = set()
    for name, source in load_sources().items():
        for field_name, field in source.settings_model.model_fields.items():
            if _is_secret(field.annotation):
                sections.setdefault(name, {})[field_name] = f"{name}-{field_name}-s3cret-value"
                secrets.add(sections[name][field_name])
            elif field.annotation is str:
                sections.setdefault(name, {})[field_name] = f"{name}-{field_name}-plain-value"
    assert secrets, "no connector declares a secret: the check would prove nothing"
    done = subprocess.run(
        [sys.executable, "-c", MASKED_ON_LOAD, json.dumps(sections)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    masked = json.loads(done.stdout.strip().splitlines()[-1])
    assert {value for value, hidden in masked.items() if hidden} == secrets


def test_build_workers_set_the_duckdb_engines_model_runs_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from retreasure.engine.engines import model_engine
    from retreasure.engine.runner import DUCKDB, default_workers

    assert model_engine("duckdb", Settings(_env_file=None)) is DUCKDB  # type: ignore[call-arg]
    assert DUCKDB.workers == default_workers() == min(4, os.cpu_count() or 1)
    monkeypatch.setenv("RETREASURE_BUILD_WORKERS", "3")
    assert model_engine("duckdb", Settings(_env_file=None)).workers == 3  # type: ignore[call-arg]
    monkeypatch.setenv("RETREASURE_BUILD_WORKERS", "0")
    with pytest.raises(ValidationError, match="build_workers"):
        Settings(_env_file=None)  # type: ignore[call-arg]
