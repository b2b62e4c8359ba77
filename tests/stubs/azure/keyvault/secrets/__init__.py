"""Stands in for ``azure.keyvault.secrets`` in a `retreasure` subprocess (put first on its PYTHONPATH): a vault
held in the JSON file named by ``KEYVAULT_STUB_SECRETS`` (secret name -> value; ``null`` for a disabled secret).
No Key Vault emulator exists; only Azure's client is replaced, everything of the platform's runs as deployed."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any


@dataclass
class SecretProperties:
    name: str
    enabled: bool


@dataclass
class KeyVaultSecret:
    name: str
    value: str


class SecretClient:
    def __init__(self, vault_url: str, credential: Any, **_: Any) -> None:
        if not vault_url.startswith("https://") or credential is None:
            raise ValueError("a vault URL and a credential, as Azure's client requires")
        with open(os.environ["KEYVAULT_STUB_SECRETS"], encoding="utf-8") as file:
            self._secrets: dict[str, str | None] = json.load(file)

    def list_properties_of_secrets(self, **_: Any) -> list[SecretProperties]:
        return [SecretProperties(name, value is not None) for name, value in self._secrets.items()]

    def get_secret(self, name: str, version: str | None = None, **_: Any) -> KeyVaultSecret:
        value = self._secrets[name]
        if value is None:
            raise PermissionError(f"secret {name} is disabled")
        return KeyVaultSecret(name, value)
