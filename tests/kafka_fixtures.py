"""The session's Kafka broker: one real broker on loopback for every test marked `kafka`, started on first use
and stopped at the end. Its jars are cached in the checkout's .tools/kafka, fetched once per machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from retreasure.streaming.broker import Broker

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_JARS = REPO_ROOT / ".tools" / "kafka"
# Shaped like an Event Hubs namespace's connection string; the session broker's SASL listener accepts it.
EVENTHUBS_CONNECTION_STRING = (
    "Endpoint=sb://retreasure-test.servicebus.windows.net/;"
    "SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=dGVzdC1vbmx5LWtleQ+/=="
)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker with a plain-text listener and one that authenticates as Event Hubs does (SASL PLAIN as
    `$ConnectionString`, over TLS with a throw-away certificate). A test may restart it; it must leave it up."""
    broker = Broker(
        tmp_path_factory.mktemp("kafka"),
        jars_root=KAFKA_JARS,
        eventhubs_connection_string=EVENTHUBS_CONNECTION_STRING,
        tls=True,
    )
    with broker:
        yield broker
