"""Settings' secrets from an Azure Key Vault, named as their environment variables are, read when a vault is set.

A secret's name is its variable's name without the ``RETREASURE_`` prefix, in Key Vault's alphabet (letters,
digits, dashes): ``_`` becomes ``-`` and the ``__`` of a section becomes ``--``. So ``pii-hmac-key`` is
``RETREASURE_PII_HMAC_KEY``, ``streaming--eventhubs-connection-string`` is
``RETREASURE_STREAMING__EVENTHUBS_CONNECTION_STRING`` and ``shopify--access-token`` is a connector's own section's
``RETREASURE_SHOPIFY__ACCESS_TOKEN``. One naming rule for every layer means the vault feeds the platform's fields
and the connectors' sections alike, which pydantic-settings' own Key Vault source (declared fields only) cannot.

Every enabled secret of the vault is read once, when the settings are built, and every value is registered with the
log masker before any field is validated: whatever the vault holds is a secret, whichever field it ends up in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pydantic_settings import BaseSettings, EnvSettingsSource

from retreasure.redact import register_secret

if TYPE_CHECKING:
    from collections.abc import Iterable

VAULT_URL_FIELD = "key_vault_url"


class SecretProperties(Protocol):
    name: str | None
    enabled: bool | None


class KeyVaultSecret(Protocol):
    value: str | None


class SecretReader(Protocol):
    """What the platform needs of ``azure.keyvault.secrets.SecretClient``."""

    def list_properties_of_secrets(self, **kwargs: Any) -> Iterable[SecretProperties]: ...

    def get_secret(self, name: str, version: str | None = None, **kwargs: Any) -> KeyVaultSecret: ...


class AzureExtraMissing(RuntimeError):
    """A vault is configured but the Azure client libraries are not installed."""


def variable_name(secret_name: str, prefix: str, delimiter: str = "__") -> str:
    """The (lower-case) variable a secret stands for: ``streaming--group-id`` -> ``retreasure_streaming__group_id``."""
    parts = secret_name.lower().split("--")
    return prefix.lower() + delimiter.join(part.replace("-", "_") for part in parts)


def secret_name(variable: str, prefix: str, delimiter: str = "__") -> str:
    """The vault name of a variable: ``RETREASURE_PII_HMAC_KEY`` -> ``pii-hmac-key`` (the inverse of the above)."""
    bare = variable.lower().removeprefix(prefix.lower())
    return "--".join(part.replace("_", "-") for part in bare.split(delimiter))


def secret_client(vault_url: str) -> SecretReader:
    """A Key Vault client that signs in as the host's identity: a managed identity (``AZURE_CLIENT_ID`` picks a
    user-assigned one), a workload identity, a service principal's ``AZURE_*`` variables, or a developer's
    ``az login``, whichever ``DefaultAzureCredential`` finds first."""
    try:
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient
    except ImportError as exc:
        raise AzureExtraMissing(
            f"a Key Vault is configured ({vault_url}) but the Azure libraries are missing: install retreasure[azure]"
        ) from exc
    return SecretClient(vault_url=vault_url, credential=DefaultAzureCredential())


class VaultVariables(Mapping[str, str | None]):
    """A vault's enabled secrets, by the variable names they stand for; each value is masked in logs from now on."""

    def __init__(self, client: SecretReader, prefix: str, delimiter: str) -> None:
        self._values: dict[str, str | None] = {}
        for properties in client.list_properties_of_secrets():
            if not properties.name or properties.enabled is False:
                continue
            value = client.get_secret(properties.name).value
            if value:
                register_secret(value)
            self._values[variable_name(properties.name, prefix, delimiter)] = value

    def __getitem__(self, key: str) -> str | None:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # the names only: a repr of a source must never print a secret
        return f"VaultVariables({sorted(self._values)})"


class KeyVaultSettingsSource(EnvSettingsSource):
    """The settings layer of a Key Vault: the environment's rules (prefix, ``__`` sections, parsing) over the
    vault's secrets renamed to variables, so it reads every field, and every section's, as the environment does."""

    def __init__(self, settings_cls: type[BaseSettings], vault_url: str, client: SecretReader | None = None) -> None:
        self.vault_url = vault_url
        self._client = client
        super().__init__(settings_cls, case_sensitive=False, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        client = self._client if self._client is not None else secret_client(self.vault_url)
        return VaultVariables(client, self.env_prefix, self.env_nested_delimiter or "__")

    def __repr__(self) -> str:
        return f"KeyVaultSettingsSource(vault_url={self.vault_url!r})"


def configured_vault_url(init_kwargs: Mapping[str, Any], *layers: EnvSettingsSource) -> str | None:
    """The vault URL given to the settings directly, else by the first layer (highest precedence first) that has it."""
    if init_kwargs.get(VAULT_URL_FIELD):
        return str(init_kwargs[VAULT_URL_FIELD])
    for layer in layers:
        value = layer.env_vars.get(f"{layer.env_prefix}{VAULT_URL_FIELD}".lower())
        if value:
            return value
    return None
