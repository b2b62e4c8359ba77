"""Typed, layered settings: defaults < .env < environment (prefix ``RETREASURE_``, nested with ``__``).

Secrets are ``SecretStr``: they print as ``**********`` and are registered with the log masker so that
their clear value never reaches a log line or an error message.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from retreasure.redact import register_secret


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


class ShopifySettings(BaseModel):
    base_url: str = "http://127.0.0.1:8701"
    api_version: str = "2025-10"
    access_token: SecretStr = SecretStr("")
    page_size: int = 250


class EbaySettings(BaseModel):
    base_url: str = "http://127.0.0.1:8702"
    access_token: SecretStr = SecretStr("")
    page_size: int = 200


class EtsySettings(BaseModel):
    base_url: str = "http://127.0.0.1:8703"
    api_key: SecretStr = SecretStr("")
    access_token: SecretStr = SecretStr("")
    shop_id: int = 1
    page_size: int = 100
    # Etsy's default for new apps; the client paces itself below it in steady state.
    requests_per_second: float = 10.0


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
    # lands when it holds this many messages or bytes, or when its first message has waited this long.
    group_id: str = "retreasure-stream"
    batch_messages: int = Field(default=5000, ge=1)
    batch_bytes: int = Field(default=16 << 20, ge=1024)
    batch_latency_ms: int = Field(default=250, ge=1)
    # Days of record hashes per table held in memory to find a producer's duplicates (read again when evicted).
    cached_days: int = Field(default=14, ge=1)
    # How often the batches' figures are written to ops.stream_batches (they are in the log at once).
    ops_interval_s: float = Field(default=5.0, gt=0)
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


class Settings(BaseSettings):
    """Everything the platform reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="RETREASURE_",
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
    )

    lake_uri: str = "./lake"
    # Passed to delta-rs for abfss:// and az:// lakes (account_name, account_key, use_emulator...).
    storage_options: dict[str, SecretStr] = Field(default_factory=dict)
    # Where file drops (POS CSV, GeoJSON, ECB XML, ad-spend CSV, event files) arrive.
    landing_dir: Path = Path("./landing")
    # Keyed hash for PII tokens in bronze; the same key must be used for the life of the lake.
    pii_hmac_key: SecretStr = SecretStr("")
    # Fernet key that encrypts the clear values kept in the restricted PII vault.
    pii_vault_key: SecretStr = SecretStr("")

    http: HttpSettings = Field(default_factory=HttpSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    shopify: ShopifySettings = Field(default_factory=ShopifySettings)
    ebay: EbaySettings = Field(default_factory=EbaySettings)
    etsy: EtsySettings = Field(default_factory=EtsySettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    streaming: StreamingSettings = Field(default_factory=StreamingSettings)

    @field_validator("lake_uri")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if "://" in value and value.split("://", 1)[0] not in {"file", "abfss", "az", "s3", "memory"}:
            raise ValueError(f"unsupported lake URI scheme in {value!r}")
        return value

    def model_post_init(self, __context: object) -> None:
        for secret in self.secrets():
            register_secret(secret)

    def secrets(self) -> list[str]:
        """Every clear secret value, for the log masker."""
        found: list[str] = []

        def walk(value: object) -> None:
            if isinstance(value, SecretStr):
                if value.get_secret_value():
                    found.append(value.get_secret_value())
            elif isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    walk(getattr(value, name))
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)

        walk(self)
        return found

    def delta_storage_options(self) -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in self.storage_options.items()}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
