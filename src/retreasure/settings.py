"""Typed, layered settings: defaults < Azure Key Vault (when ``RETREASURE_KEY_VAULT_URL`` is set) < .env <
environment (prefix ``RETREASURE_``, nested with ``__``).

Secrets are ``SecretStr``: they print as ``**********`` and are registered with the log masker so that
their clear value never reaches a log line or an error message.

A source's settings are its connector's own: each connector declares its section's model beside it, and every
section the platform does not declare here (``RETREASURE_SHOPIFY__ACCESS_TOKEN``, ``shopify={...}``) is kept as
configured until the connector reads it through ``Settings.source``. Adding a source never edits this module.
A section's secrets are masked in logs as soon as its connector's model is known (``declare_section``, or the
model its package publishes as an entry point), whether the settings were read before or after.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import suppress
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from retreasure.redact import register_secret
from retreasure.settings_vault import KeyVaultSettingsSource, configured_vault_url


class AlertSettings(BaseModel):
    """Where failure alerts go. A channel with no address configured is skipped."""

    # A Teams Workflows ("When a Teams webhook request is received") or incoming-webhook URL: its signature
    # is the credential, hence secret.
    teams_webhook_url: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_from: str | None = None
    smtp_to: list[str] = Field(default_factory=list)
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    timeout_s: float = 10.0

    def channels(self) -> list[str]:
        found = []
        if self.teams_webhook_url and self.teams_webhook_url.get_secret_value():
            found.append("teams")
        if self.smtp_host and self.smtp_from and self.smtp_to:
            found.append("email")
        return found


class HttpSettings(BaseModel):
    """How every API connector behaves on the wire."""

    timeout_s: float = 30.0
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    # Cap on a server-sent Retry-After, so a daily-quota 86400 s answer fails fast instead of hanging a run.
    retry_after_max_s: float = 120.0


class SourceSettings(BaseModel):
    """Base of a connector's own settings section, declared beside the connector: ``RETREASURE_<SOURCE>__<FIELD>``
    in the environment or .env. Its secrets are ``SecretStr``, registered with the log masker (``declare_section``)."""


SectionT = TypeVar("SectionT", bound=BaseModel)


class IngestSettings(BaseModel):
    """Incremental windows for API sources, and the size limits every input is held to."""

    # Start of the very first window when nothing has been ingested yet.
    start: str = "2020-01-01T00:00:00Z"
    # Re-read this much before the watermark, so that updates committed late at the source are not missed.
    lookback_minutes: int = 60
    # Records buffered before one Delta commit.
    flush_records: int = 100_000
    # Bounds on what one input may cost. A line longer than max_line_bytes is never held in memory: it is
    # quarantined as one record (its start, size and SHA-256). A record over max_record_bytes is quarantined
    # whole, its raw text cut to its start. A file over max_file_bytes is refused unread.
    max_line_bytes: int = Field(default=1 << 20, ge=1024)
    max_record_bytes: int = Field(default=4 << 20, ge=1024)  # a detailed delivery-zone polygon is a few MB
    max_file_bytes: int = Field(default=100 << 20, ge=1024)


class ServeSettings(BaseModel):
    """Where the HTTP API and the dashboards listen: loopback unless a deployment says otherwise."""

    host: str = "127.0.0.1"
    api_port: int = 8000
    dashboard_port: int = 8501
    page_size: int = 100  # default page of the API's cursor-paged lists
    max_page_size: int = 1000
    # The API's kept answers (serving/api/cache.py): their bytes at most, and how often a lake on remote storage
    # is asked for its tables' versions (a local lake is asked on every request).
    cache_megabytes: int = 64
    remote_probe_seconds: float = 0.25


# -- storage (a lake on Azure storage) -------------------------------------------------------------------------

# Azurite's development account: published in Azure's documentation, the same on every machine, no secret.
EMULATOR_ACCOUNT = "devstoreaccount1"
EMULATOR_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURE_SCHEMES = ("abfss", "abfs", "az", "adl", "azure")
# delta-rs (object_store) option names that carry a credential, less their optional `azure_` or `azure_storage_`
# prefix: with none of them, and no managed identity asked for, delta-rs would quietly try the machine's managed
# identity and fail far from the cause.
_CREDENTIAL_OPTIONS = {
    "account_key", "access_key", "master_key", "sas_key", "sas_token", "token", "bearer_token", "client_secret",
    "use_emulator", "use_azure_cli", "federated_token_file", "skip_signature",
}  # fmt: skip


class StorageSettings(BaseModel):
    """How the platform reaches a lake on Azure storage (ADLS Gen2 ``abfss://``, blob ``az://``); unused for a
    local lake. One way in is chosen explicitly: the account key, a SAS token, a managed identity, or the Azurite
    emulator; a lake on Azure with none of them is refused as the settings load."""

    # The storage account; an abfss:// URI names it in its host, an az:// URI does not.
    account_name: str | None = None
    account_key: SecretStr | None = None
    sas_token: SecretStr | None = None
    # The identity of the machine (a Databricks cluster's, a VM's); a user-assigned one by its client id.
    use_managed_identity: bool = False
    managed_identity_client_id: str | None = None
    # Azurite, the local emulator (tests, a laptop): its development account and key unless others are given; its
    # blob endpoint, handed to delta-rs as AZURITE_BLOB_STORAGE_URL (default http://127.0.0.1:10000).
    use_emulator: bool = False
    emulator_url: str | None = None

    def delta_options(self, lake_uri: str) -> dict[str, str]:
        """The delta-rs storage options for a lake at ``lake_uri`` (none for a lake that is not on Azure)."""
        if not is_azure_uri(lake_uri):
            return {}
        options: dict[str, str] = {}
        account = self.account_name  # an abfss:// URI's own account needs no option
        if self.use_emulator:
            options["use_emulator"] = "true"
            account = account or azure_account(lake_uri) or EMULATOR_ACCOUNT
            options["account_key"] = self.account_key.get_secret_value() if self.account_key else EMULATOR_KEY
        elif self.account_key is not None:
            options["account_key"] = self.account_key.get_secret_value()
        if self.sas_token is not None:
            options["sas_token"] = self.sas_token.get_secret_value()
        if self.managed_identity_client_id:
            options["client_id"] = self.managed_identity_client_id
        if account:
            options["account_name"] = account
        return options


def is_azure_uri(uri: str) -> bool:
    return uri.split("://", 1)[0].lower() in AZURE_SCHEMES if "://" in uri else False


def _unprefixed(option: str) -> str:
    option = option.lower()
    for prefix in ("azure_storage_", "azure_"):
        option = option.removeprefix(prefix)
    return option


def azure_account(uri: str) -> str | None:
    """The storage account an ``abfss://<container>@<account>.dfs.core.windows.net/...`` URI names, if any."""
    authority = uri.split("://", 1)[1].split("/", 1)[0] if "://" in uri else ""
    host = authority.rpartition("@")[2]
    return host.split(".", 1)[0] if "@" in authority and "." in host else None


# -- end of storage -----------------------------------------------------------------------------------------------


# -- streaming (web clickstream and online transactions over the Kafka protocol) ------------------------------


class StreamingSettings(BaseModel):
    """Where the web clickstream and online transactions travel: a Kafka broker, or an Azure Event Hubs
    namespace through its Kafka endpoint (docs/streaming.md)."""

    # host:port[,host:port]. For Event Hubs: <namespace>.servicebus.windows.net:9093 (derived from the
    # connection string when left at the local default).
    bootstrap_servers: str = "127.0.0.1:9092"
    clickstream_topic: str = "web.clickstream"
    transactions_topic: str = "web.transactions"
    partitions: int = Field(default=3, ge=1)
    # An Event Hubs namespace's connection string (Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...):
    # when set, clients log in with SASL PLAIN as `$ConnectionString`, this string as the password, over TLS.
    eventhubs_connection_string: SecretStr | None = None
    # CA certificate(s) to trust instead of the system's (a private broker's certificate); Event Hubs needs none.
    ssl_ca_location: Path | None = None
    # `retreasure stream`: its consumer group, and the bounds of a micro-batch (one Delta commit per topic): it
    # lands when it holds this many messages or bytes, or when its first message has waited this long. A commit
    # costs some 10 ms whatever its size: a backlog lands in big batches (20,000: ~1 us a message, against ~4 us
    # at 5,000), while at a live rate the latency bound closes the batches (250 ms: ~1,250 messages at 5,000/s).
    group_id: str = "retreasure-stream"
    batch_messages: int = Field(default=20_000, ge=1)
    batch_bytes: int = Field(default=16 << 20, ge=1024)
    batch_latency_ms: int = Field(default=250, ge=1)
    # Days of record hashes per table held in memory to find a producer's duplicates (read again when evicted).
    cached_days: int = Field(default=14, ge=1)
    # How often the batches' figures are written to ops.stream_batches (they are in the log at once).
    ops_interval_s: float = Field(default=5.0, gt=0)
    # `retreasure stream` builds what the streamed tables feed (silver, gold) this often when something landed,
    # and once more as it stops; 0: it only lands, and the hourly build takes the streamed rows on.
    build_every_s: float = Field(default=0.0, ge=0)
    # The local broker (`retreasure broker`): its data and log, and the cache of its pinned jars.
    broker_dir: Path = Path(".broker")
    jars_dir: Path = Path(".tools/kafka")

    @property
    def topics(self) -> list[str]:
        return [self.clickstream_topic, self.transactions_topic]

    @property
    def entities(self) -> dict[str, str]:
        """Topic -> the source entity its messages are (``<source>.<entity>``), landed in its bronze table."""
        return {self.clickstream_topic: "web.clickstream", self.transactions_topic: "web.transactions"}

    def client_config(self) -> dict[str, str]:
        """confluent-kafka settings for these servers (and credentials, for Event Hubs)."""
        if self.eventhubs_connection_string is None:
            return {"bootstrap.servers": self.bootstrap_servers}
        secret = self.eventhubs_connection_string.get_secret_value()
        servers = self.bootstrap_servers
        if servers == type(self).model_fields["bootstrap_servers"].default:
            servers = eventhubs_bootstrap_servers(secret)
        config = {
            "bootstrap.servers": servers,
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": "$ConnectionString",
            "sasl.password": secret,
        }
        if self.ssl_ca_location is not None:
            config["ssl.ca.location"] = str(self.ssl_ca_location)
        return config


def eventhubs_bootstrap_servers(connection_string: str) -> str:
    """<namespace>.servicebus.windows.net:9093 from a connection string's `Endpoint=sb://<host>/`."""
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "endpoint":
            host = value.strip().removeprefix("sb://").split("/", 1)[0]
            if host:
                return f"{host.split(':', 1)[0]}:9093"
    raise ValueError("the Event Hubs connection string has no Endpoint=sb://<namespace>.servicebus.windows.net/")


# -- end of streaming ---------------------------------------------------------------------------------------------


class SparkSettings(BaseModel):
    """The Spark engine (`retreasure build --engine spark`): a local session here, a cluster's on Databricks."""

    master: str = "local[2]"
    driver_memory: str = "1g"  # the local session's JVM heap (-Xmx)
    shuffle_partitions: int = Field(default=2, ge=1)  # Spark's default of 200 is for clusters, not one machine
    # The pinned Delta jars pyspark lacks, fetched from Maven Central on first use.
    jars_dir: Path = Path(".tools/spark")
    # More session settings (the lake's storage account for ABFS, say), over the engine's own.
    conf: dict[str, str] = Field(default_factory=dict)


class Settings(BaseSettings):
    """Everything the platform reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="RETREASURE_",
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
    )

    # A folder, or a lake on Azure storage: abfss://<container>@<account>.dfs.core.windows.net/<path>, az://...
    lake_uri: str = "./lake"
    # How a lake on Azure storage is reached (RETREASURE_STORAGE__ACCOUNT_KEY, ...__USE_EMULATOR, ...).
    storage: StorageSettings = Field(default_factory=StorageSettings)
    # Further delta-rs storage options, over those the storage section gives (a service principal's client_secret
    # and tenant_id, say): RETREASURE_STORAGE_OPTIONS as a JSON object.
    storage_options: dict[str, SecretStr] = Field(default_factory=dict)
    # Where file drops (POS CSV, GeoJSON, ECB XML, ad-spend CSV, event files) arrive.
    landing_dir: Path = Path("./landing")
    # Where Dagster keeps runs, schedules and every asset's history (DAGSTER_HOME, when set, wins).
    dagster_home: Path = Path("./.dagster")
    # Keyed hash for PII tokens in bronze; the same key must be used for the life of the lake.
    pii_hmac_key: SecretStr = SecretStr("")
    # Fernet key that encrypts the clear values kept in the restricted PII vault.
    pii_vault_key: SecretStr = SecretStr("")
    # An Azure Key Vault (https://<name>.vault.azure.net/) whose secrets are settings too, below the environment
    # and .env (settings_vault.py; needs retreasure[azure]).
    key_vault_url: str | None = None

    http: HttpSettings = Field(default_factory=HttpSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    streaming: StreamingSettings = Field(default_factory=StreamingSettings)
    # Which engine runs the models: DuckDB in process (the default), or Spark with Delta (`pip install
    # retreasure[spark]`), the same SQL and contracts (docs/architecture.md).
    engine: Literal["duckdb", "spark"] = "duckdb"
    # Model runs at once in a DuckDB build (engine/schedule.py); unset: one per core, up to four.
    build_workers: int | None = Field(default=None, ge=1, le=64)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    # Each source's own section as configured, by source name; read, validated, only through ``source()``.
    # Kept out of reprs and dumps: its secrets are plain text until their connector's model reads them.
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict, repr=False, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert isinstance(env_settings, EnvSettingsSource) and isinstance(dotenv_settings, DotEnvSettingsSource)
        assert isinstance(init_settings, InitSettingsSource)
        # Precedence: arguments > environment > .env > Key Vault > defaults, for the sections as for the fields.
        layers: tuple[EnvSettingsSource, ...] = (dotenv_settings, env_settings)
        vault_url = configured_vault_url(init_settings.init_kwargs, env_settings, dotenv_settings)
        if vault_url:
            layers = (KeyVaultSettingsSource(settings_cls, vault_url), *layers)
        sections = SourceSections(settings_cls, *layers)
        return init_settings, sections, *reversed(layers), file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _gather_source_sections(cls, data: Any) -> Any:
        """Every section the platform does not declare is a source's own: into ``sources``, over what it holds."""
        if not isinstance(data, dict):
            return data
        sections = {k: v for k, v in data.items() if k not in cls.model_fields and isinstance(v, Mapping | BaseModel)}
        if not sections:
            return data
        sources = {name: dict(values) for name, values in (data.get("sources") or {}).items()}
        for name, values in sections.items():
            given = values.model_dump() if isinstance(values, BaseModel) else values
            sources[name] = {**sources.get(name, {}), **given}
        return {**{k: v for k, v in data.items() if k not in sections}, "sources": sources}

    @field_validator("lake_uri")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if "://" in value and value.split("://", 1)[0] not in {"file", "s3", "memory", *AZURE_SCHEMES}:
            raise ValueError(f"unsupported lake URI scheme in {value!r}")
        return value

    @model_validator(mode="after")
    def _azure_lake_has_a_credential(self) -> Settings:
        if is_azure_uri(self.lake_uri) and not self.storage.use_managed_identity:
            given = {_unprefixed(name) for name in self.delta_storage_options()}
            if not given & _CREDENTIAL_OPTIONS:
                raise ValueError(
                    f"the lake {self.lake_uri} is on Azure storage and no way in is configured: set "
                    "RETREASURE_STORAGE__ACCOUNT_KEY, ...__SAS_TOKEN, ...__USE_MANAGED_IDENTITY=true or "
                    "...__USE_EMULATOR=true (delta-rs would otherwise try a managed identity on its own)"
                )
        return self

    def model_post_init(self, __context: object) -> None:
        _register_secrets(self)
        for name, values in self.sources.items():
            _mask_section(name, values)

    def secrets(self) -> list[str]:
        """Every clear secret value of the platform's own sections, for the log masker."""
        return _secrets_in(self)

    def source(self, name: str, model: type[SectionT]) -> SectionT:
        """Source ``name``'s section, validated by the model its connector declares; its secrets are registered with
        the log masker here, before the connector can use them."""
        section = model.model_validate(self.sources.get(name, {}))
        _register_secrets(section)
        return section

    def with_source(self, name: str, **values: Any) -> Settings:
        """A copy whose section ``name`` has ``values`` over what is configured (a test's or a demo's servers)."""
        sources = {**self.sources, name: {**self.sources.get(name, {}), **values}}
        _mask_section(name, sources[name])
        return self.model_copy(update={"sources": sources})

    def delta_storage_options(self) -> dict[str, str]:
        """What delta-rs is given to reach the lake: the storage section's options, then ``storage_options``."""
        extra = {k: v.get_secret_value() for k, v in self.storage_options.items()}
        return self.storage.delta_options(self.lake_uri) | extra


# Section models by source name, declared by the connectors as they are defined, and the sections configured
# before their model was declared: whichever comes second registers the section's secrets with the log masker, so
# a token in the environment is masked in every log line, whether or not its connector has been imported yet.
_section_models: dict[str, type[BaseModel]] = {}
_awaiting_model: dict[str, dict[str, dict[str, Any]]] = {}  # name -> configured sections by their JSON text

# Installed packages publish their sources' section models as entry points in this group (`shopify =
# "retreasure.connectors.shopify:ShopifySettings"`, pyproject.toml): a configured section's model is found there as
# the settings load, so its secrets are masked from the first log line without every command importing every
# connector first (which made `retreasure <command> --help` pay for pydantic-settings and the HTTP stack).
SOURCE_SETTINGS_GROUP = "retreasure.source_settings"


@lru_cache(maxsize=1)
def _published_section_models() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=SOURCE_SETTINGS_GROUP)}


def _section_model(name: str) -> type[BaseModel] | None:
    """Source ``name``'s section model: declared by its connector, or published by its package (imported now)."""
    if name not in _section_models and name in _published_section_models():
        model = _published_section_models()[name].load()  # importing a connector declares its model itself
        _section_models.setdefault(name, model)
    return _section_models.get(name)


def declare_section(name: str, model: type[BaseModel]) -> None:
    """Source ``name`` reads its settings section with ``model``: the secrets of every such section, configured
    before or after, are registered with the log masker."""
    _section_models[name] = model
    for values in _awaiting_model.pop(name, {}).values():
        _mask_section(name, values)


def _mask_section(name: str, values: dict[str, Any]) -> None:
    model = _section_model(name)
    if model is None:
        _awaiting_model.setdefault(name, {})[json.dumps(values, sort_keys=True, default=str)] = values
        return
    # An invalid section: its connector fails on it before it can send a secret anywhere.
    with suppress(ValidationError):
        _register_secrets(model.model_validate(values))


def _register_secrets(model: BaseModel) -> None:
    for secret in _secrets_in(model):
        register_secret(secret)


def _secrets_in(value: object) -> list[str]:
    """Every clear ``SecretStr`` value in a model, its sub-models and dicts."""
    if isinstance(value, SecretStr):
        return [value.get_secret_value()] if value.get_secret_value() else []
    if isinstance(value, BaseModel):
        return [secret for name in type(value).model_fields for secret in _secrets_in(getattr(value, name))]
    if isinstance(value, dict):
        return [secret for item in value.values() for secret in _secrets_in(item)]
    return []


class SourceSections(PydanticBaseSettingsSource):
    """``RETREASURE_<SOURCE>__<FIELD>`` variables of the .env file and the environment (which wins) whose section
    the platform does not declare: each source's own, as nested dicts, for its connector to validate."""

    def __init__(self, settings_cls: type[BaseSettings], *layers: EnvSettingsSource) -> None:
        super().__init__(settings_cls)
        self.layers = layers  # lowest precedence first

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # no declared field is read here

    def __call__(self) -> dict[str, Any]:
        sections: dict[str, Any] = {}
        for layer in self.layers:
            prefix, delimiter = layer.env_prefix.lower(), layer.env_nested_delimiter or "__"
            for variable, value in layer.env_vars.items():
                if value is None or not variable.lower().startswith(prefix):
                    continue
                name, _, path = variable.lower().removeprefix(prefix).partition(delimiter)
                if not path or name in self.settings_cls.model_fields:
                    continue  # not a section, or one of the platform's own (read by the standard sources)
                node = sections.setdefault(name, {})
                *parents, leaf = path.split(delimiter)
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = value
        return sections


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
