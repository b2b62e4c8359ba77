"""With a Key Vault configured, the settings' secrets (the platform's and the connectors' sections') come from it,
below the environment and .env, and its values never show in reprs, dumps or logs.

No Key Vault emulator exists: Azure's ``SecretClient`` is replaced by a stub that holds secrets in memory and
answers the two calls the platform makes. Everything of the platform's runs as it would against Azure.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.keyvault.secrets
import pytest
from pydantic import SecretStr

from retreasure import log
from retreasure.connectors.base import load_sources
from retreasure.connectors.shopify import ShopifySettings
from retreasure.redact import redact
from retreasure.settings import Settings
from retreasure.settings_vault import AzureExtraMissing, secret_name, variable_name

VAULT_URL = "https://retreasure-test.vault.azure.net/"


@dataclass
class StubProperties:
    name: str
    enabled: bool = True


@dataclass
class StubSecret:
    name: str
    value: str


@dataclass
class StubVault:
    """Secrets by name, and what the platform asked of the client."""

    secrets: dict[str, str]
    disabled: set[str] = field(default_factory=set)
    clients: list[tuple[str, Any]] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)

    def client(self, vault_url: str, credential: Any, **_: Any) -> StubSecretClient:
        self.clients.append((vault_url, credential))
        return StubSecretClient(self)


class StubSecretClient:
    """Stands in for ``azure.keyvault.secrets.SecretClient``: listing returns properties only, as Azure's does."""

    def __init__(self, vault: StubVault) -> None:
        self.vault = vault

    def list_properties_of_secrets(self, **_: Any) -> list[StubProperties]:
        return [StubProperties(name, name not in self.vault.disabled) for name in self.vault.secrets]

    def get_secret(self, name: str, version: str | None = None, **_: Any) -> StubSecret:
        if name in self.vault.disabled:
            raise PermissionError(f"secret {name} is disabled")  # Azure answers 403 for a disabled secret
        self.vault.reads.append(name)
        return StubSecret(name, self.vault.secrets[name])


SECRETS = {
    "pii-hmac-key": "vault-hmac-2f9c1e7a",
    "pii-vault-key": "vault-fernet-88d0b4c2",
    "streaming--eventhubs-connection-string": (
        "Endpoint=sb://rt-test.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=vault-eh-5ab1"
    ),
    "storage-options--account-key": "vault-storage-key-c0ffee",
    "alerts--smtp-password": "vault-smtp-7d7d",
    "shopify--access-token": "shpat-vault-31415926",
    "retired-api-key": "vault-retired-27182818",
}


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> StubVault:
    stub = StubVault(dict(SECRETS), disabled={"retired-api-key"})
    monkeypatch.setattr(azure.keyvault.secrets, "SecretClient", stub.client)
    for variable in ("RETREASURE_KEY_VAULT_URL", "AZURE_CLIENT_ID"):
        monkeypatch.delenv(variable, raising=False)
    return stub


def test_secrets_resolve_from_the_vault_when_its_url_is_configured(
    vault: StubVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETREASURE_KEY_VAULT_URL", VAULT_URL)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert [url for url, _ in vault.clients] == [VAULT_URL], "one client, for the configured vault"
    assert type(vault.clients[0][1]).__name__ == "DefaultAzureCredential", "signed in as the host's identity"
    assert settings.pii_hmac_key.get_secret_value() == "vault-hmac-2f9c1e7a"
    assert settings.pii_vault_key.get_secret_value() == "vault-fernet-88d0b4c2"
    assert settings.streaming.eventhubs_connection_string is not None
    assert settings.streaming.client_config()["bootstrap.servers"] == "rt-test.servicebus.windows.net:9093"
    assert settings.delta_storage_options() == {"account_key": "vault-storage-key-c0ffee"}
    assert settings.alerts.smtp_password is not None
    assert settings.alerts.smtp_password.get_secret_value() == "vault-smtp-7d7d"
    # A connector's own section, which the platform does not declare, reads from the vault too.
    assert settings.source("shopify", ShopifySettings).access_token.get_secret_value() == "shpat-vault-31415926"
    assert "retired-api-key" not in vault.reads, "a disabled secret is not read"


def test_the_environment_and_dotenv_win_over_the_vault(
    vault: StubVault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"RETREASURE_KEY_VAULT_URL={VAULT_URL}\n"
        "RETREASURE_PII_HMAC_KEY=dotenv-hmac-1111\n"
        "RETREASURE_SHOPIFY__ACCESS_TOKEN=shpat-dotenv-2222\n"
    )
    monkeypatch.setenv("RETREASURE_PII_HMAC_KEY", "env-hmac-3333")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]

    assert [url for url, _ in vault.clients] == [VAULT_URL], "the vault's URL may come from .env"
    assert settings.pii_hmac_key.get_secret_value() == "env-hmac-3333", "environment > .env > vault"
    assert settings.source("shopify", ShopifySettings).access_token.get_secret_value() == "shpat-dotenv-2222"
    assert settings.pii_vault_key.get_secret_value() == "vault-fernet-88d0b4c2", "what nothing else sets: the vault"
    arguments = Settings(_env_file=None, key_vault_url=VAULT_URL, pii_vault_key="argument-key-4444")  # type: ignore[call-arg]
    assert arguments.pii_vault_key.get_secret_value() == "argument-key-4444", "arguments win over everything"


def test_no_vault_url_reads_no_vault(vault: StubVault) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert vault.clients == [] and settings.key_vault_url is None


def test_vault_values_never_show_in_reprs_dumps_or_logs(vault: StubVault, monkeypatch: pytest.MonkeyPatch) -> None:
    load_sources()
    monkeypatch.setenv("RETREASURE_KEY_VAULT_URL", VAULT_URL)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    shown = [value for value in SECRETS.values() if value != SECRETS["retired-api-key"]]

    surfaces = [repr(settings), str(settings), str(settings.model_dump()), settings.model_dump_json()]
    surfaces.append(repr(settings.source("shopify", ShopifySettings)))
    stream = io.StringIO()
    log.configure("INFO", stream)
    logger = log.get_logger("test.vault")
    for value in shown:
        logger.info("connecting with %s", value, extra={"credential": value})
    try:
        raise RuntimeError(f"login refused for {SECRETS['storage-options--account-key']}")
    except RuntimeError:
        logger.exception("storage failed")
    logging.getLogger("retreasure").handlers.clear()
    surfaces.append(stream.getvalue())

    leaks = [(value, text[:80]) for value in shown for text in surfaces if value in text]
    assert leaks == []
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["msg"] for line in lines[: len(shown)]] == ["connecting with ***"] * len(shown)
    assert redact(f"key {SECRETS['retired-api-key']}") == f"key {SECRETS['retired-api-key']}", "never read"


def test_a_configured_vault_without_the_azure_libraries_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "azure.keyvault.secrets", None)  # as if retreasure[azure] were not installed
    monkeypatch.setenv("RETREASURE_KEY_VAULT_URL", VAULT_URL)
    with pytest.raises(AzureExtraMissing, match=r"retreasure\[azure\]"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def secret_variables(model: type[Any], prefix: str = "RETREASURE_") -> list[str]:
    """Every ``SecretStr`` field of a settings model and its sections, as its environment variable."""
    found = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        nested = getattr(annotation, "model_fields", None)
        if nested is not None:
            found += secret_variables(annotation, f"{prefix}{name.upper()}__")
        elif "SecretStr" in str(annotation):
            found.append(f"{prefix}{name.upper()}")
    return found


def test_every_secret_setting_has_a_vault_name_that_maps_back_to_it() -> None:
    variables = secret_variables(Settings)
    assert "RETREASURE_STREAMING__EVENTHUBS_CONNECTION_STRING" in variables and "RETREASURE_PII_HMAC_KEY" in variables
    for variable in variables:
        name = secret_name(variable, "RETREASURE_")
        assert name.replace("-", "").isalnum() and len(name) <= 127, f"{name}: not a valid Key Vault secret name"
        assert variable_name(name, "RETREASURE_") == variable.lower()
    assert secret_name("RETREASURE_SHOPIFY__ACCESS_TOKEN", "RETREASURE_") == "shopify--access-token"
    assert isinstance(Settings(_env_file=None).pii_hmac_key, SecretStr)  # type: ignore[call-arg]
