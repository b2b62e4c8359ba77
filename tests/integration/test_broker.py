"""The local Kafka broker: real messages through it, a restart that keeps them, Event Hubs style logins, a
missing Java runtime, and pinned jars repaired when damaged."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from retreasure.redact import redact
from retreasure.settings import Settings, StreamingSettings, eventhubs_bootstrap_servers
from retreasure.streaming.broker import Broker, BrokerFailed, JavaNotFound
from retreasure.streaming.jars import JarDownloadError, PinnedJar, ensure_jars, kafka_version, pinned_jars
from tests.helpers import cli_env
from tests.kafka_fixtures import EVENTHUBS_CONNECTION_STRING, KAFKA_JARS

pytestmark = pytest.mark.kafka


def produce(config: dict[str, str], topic: str, messages: list[tuple[str, str]]) -> None:
    """Each (key, value) written with acks from all replicas; fails the test on any delivery error."""
    failures: list[str] = []

    def delivered(error: KafkaError | None, message: Any) -> None:
        if error is not None:
            failures.append(error.str())

    producer = Producer(config | {"acks": "all", "enable.idempotence": True})
    for key, value in messages:
        producer.produce(topic, value=value.encode(), key=key.encode(), on_delivery=delivered)
    assert producer.flush(120) == 0, "messages still undelivered after 120 s"
    assert failures == []


def consume(config: dict[str, str], topic: str, group: str, count: int, idle_s: float = 3.0) -> list[Any]:
    """Messages read by a consumer of `group` (from the earliest offset when the group has none) until `count`
    arrived and then `idle_s` passed with nothing more, so that extra messages would show; offsets committed."""
    consumer = Consumer(config | {"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    received: list[Any] = []
    deadline = time.monotonic() + 180  # a bound a busy machine does not reach, not a wait: it ends on the count
    quiet_since = None
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                if len(received) >= count:
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since >= idle_s:
                        break
                continue
            assert message.error() is None, message.error().str()
            received.append(message)
            quiet_since = None
        if received:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return received


def keyed(prefix: str, keys: int, per_key: int) -> list[tuple[str, str]]:
    return [(f"{prefix}-key-{k}", f"{prefix}-key-{k}-message-{n}") for n in range(per_key) for k in range(keys)]


def test_keyed_messages_travel_through_a_three_partition_topic(kafka_broker: Broker) -> None:
    kafka_broker.create_topics(["test.keyed"], partitions=3)
    partitions = AdminClient(kafka_broker.client_config()).list_topics("test.keyed", timeout=10).topics["test.keyed"]
    assert len(partitions.partitions) == 3

    sent = keyed("keyed", keys=12, per_key=4)
    produce(kafka_broker.client_config(), "test.keyed", sent)
    received = consume(kafka_broker.client_config(), "test.keyed", "keyed-readers", len(sent))

    assert sorted((m.key().decode(), m.value().decode()) for m in received) == sorted(sent)
    partition_of: dict[str, set[int]] = {}
    for message in received:
        partition_of.setdefault(message.key().decode(), set()).add(message.partition())
    assert all(len(found) == 1 for found in partition_of.values()), "one key, one partition"
    assert len({p for found in partition_of.values() for p in found}) > 1, "12 keys spread over partitions"
    for key in partition_of:
        in_order = [m.value().decode() for m in received if m.key().decode() == key]
        assert in_order == [value for k, value in sent if k == key], f"{key} read in the order written"


def test_restart_keeps_messages_and_committed_offsets(kafka_broker: Broker) -> None:
    kafka_broker.create_topics(["test.restart"], partitions=3)
    config = kafka_broker.client_config()
    before = keyed("before", keys=5, per_key=2)
    produce(config, "test.restart", before)
    assert len(consume(config, "test.restart", "restart-readers", len(before))) == len(before)
    address = kafka_broker.bootstrap_servers

    kafka_broker.restart()

    assert kafka_broker.bootstrap_servers == address
    after = keyed("after", keys=5, per_key=1)
    produce(config, "test.restart", after)
    resumed = consume(config, "test.restart", "restart-readers", len(after))
    assert sorted(m.value().decode() for m in resumed) == sorted(v for _, v in after), "resumes at its offsets"
    everything = consume(config, "test.restart", "restart-newcomers", len(before) + len(after))
    assert sorted(m.value().decode() for m in everything) == sorted(v for _, v in before + after)


def test_eventhubs_style_login_over_tls(kafka_broker: Broker) -> None:
    kafka_broker.create_topics(["test.eventhubs"], partitions=2)
    # The settings the consumer reads in production, pointed at the local listener and its certificate.
    streaming = StreamingSettings(
        bootstrap_servers=kafka_broker.sasl_bootstrap_servers,
        eventhubs_connection_string=EVENTHUBS_CONNECTION_STRING,  # type: ignore[arg-type]
        ssl_ca_location=kafka_broker.ssl_ca_location,
    )
    config = streaming.client_config()
    assert config["security.protocol"] == "SASL_SSL" and config["sasl.username"] == "$ConnectionString"

    sent = keyed("hubs", keys=3, per_key=2)
    produce(config, "test.eventhubs", sent)
    received = consume(config, "test.eventhubs", "hubs-readers", len(sent))
    assert sorted(m.value().decode() for m in received) == sorted(v for _, v in sent)


def test_eventhubs_style_login_in_plain_text(tmp_path: Path) -> None:
    secret = "Endpoint=sb://plain.servicebus.windows.net/;SharedAccessKeyName=p;SharedAccessKey=k"
    with Broker(tmp_path / "broker", jars_root=KAFKA_JARS, eventhubs_connection_string=secret) as broker:
        config = broker.client_config(eventhubs=True)
        assert config["security.protocol"] == "SASL_PLAINTEXT" and "ssl.ca.location" not in config
        broker.create_topics(["test.sasl-plain"], partitions=2)
        sent = keyed("plain", keys=2, per_key=2)
        produce(config, "test.sasl-plain", sent)
        received = consume(config, "test.sasl-plain", "plain-readers", len(sent))
    assert sorted(m.value().decode() for m in received) == sorted(v for _, v in sent)
    assert not (tmp_path / "broker" / "tls").exists()


def test_eventhubs_listener_refuses_a_wrong_key(kafka_broker: Broker) -> None:
    errors: list[KafkaError] = []
    wrong = kafka_broker.client_config(eventhubs=True) | {
        "sasl.password": EVENTHUBS_CONNECTION_STRING.replace("SharedAccessKey=", "SharedAccessKey=x"),
        "error_cb": errors.append,
    }
    admin = AdminClient(wrong)
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    deadline = time.monotonic() + 30
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) and time.monotonic() < deadline:
        admin.poll(0.5)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), [e.str() for e in errors]


def test_eventhubs_servers_come_from_the_connection_string() -> None:
    assert eventhubs_bootstrap_servers(EVENTHUBS_CONNECTION_STRING) == "retreasure-test.servicebus.windows.net:9093"
    config = StreamingSettings(eventhubs_connection_string=EVENTHUBS_CONNECTION_STRING).client_config()  # type: ignore[arg-type]
    assert config["bootstrap.servers"] == "retreasure-test.servicebus.windows.net:9093"
    assert "ssl.ca.location" not in config, "Event Hubs' certificate is checked against the system's CAs"
    with pytest.raises(ValueError, match="Endpoint"):
        eventhubs_bootstrap_servers("SharedAccessKeyName=x;SharedAccessKey=y")


def test_the_connection_string_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETREASURE_STREAMING__EVENTHUBS_CONNECTION_STRING", EVENTHUBS_CONNECTION_STRING)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert EVENTHUBS_CONNECTION_STRING in settings.secrets(), "registered with the log masker"
    assert EVENTHUBS_CONNECTION_STRING not in repr(settings) and "dGVzdC1vbmx5LWtleQ" not in str(settings.model_dump())
    assert "dGVzdC1vbmx5LWtleQ" not in redact(f"could not connect with {EVENTHUBS_CONNECTION_STRING}")


def test_missing_java_is_named_in_one_line(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", jars_root=KAFKA_JARS, java=tmp_path / "no-such-java")
    with pytest.raises(JavaNotFound) as raised:
        broker.start()
    assert "\n" not in str(raised.value) and "Java" in str(raised.value)
    assert not broker.running and not (tmp_path / "broker").exists(), "nothing started, nothing written"

    # The command says the same, in one line, when the machine has no java on its PATH.
    env = cli_env(tmp_path) | {"PATH": str(tmp_path / "empty-bin")}
    env.pop("JAVA_HOME", None)
    done = subprocess.run(
        [sys.executable, "-m", "retreasure", "broker", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Java not found" in done.stdout and len(done.stdout.strip().splitlines()) == 1, done.stdout


def test_a_broker_that_cannot_start_says_why_from_its_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = Broker(tmp_path / "broker", jars_root=KAFKA_JARS, port=taken.getsockname()[1])
        with pytest.raises(BrokerFailed) as raised:
            broker.start()
    assert "exited" in str(raised.value) and "Address already in use" in str(raised.value), str(raised.value)
    assert str(tmp_path / "broker" / "broker.log") in str(raised.value), "the log it quotes is named"
    assert not broker.running


@pytest.fixture
def local_maven(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder laid out as a Maven repository, served over HTTP on loopback: (folder, base URL)."""
    root = tmp_path / "maven"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def publish(maven: Path, jar: PinnedJar, data: bytes) -> None:
    path = maven / jar.url("").lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_damaged_jars_are_fetched_again_and_checked(tmp_path: Path, local_maven: tuple[Path, str]) -> None:
    maven, base_url = local_maven
    cache = ensure_jars(KAFKA_JARS)  # the machine's cache: fetched from Maven Central on first use
    root = tmp_path / "jars"
    libs = root / kafka_version() / "libs"
    shutil.copytree(cache, libs)
    jars = pinned_jars()
    corrupted, missing = jars[0], jars[1]
    damaged = bytearray((libs / corrupted.file_name).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # same size, one byte changed
    (libs / corrupted.file_name).write_bytes(bytes(damaged))
    (libs / missing.file_name).unlink()
    (libs / "kafka-clients-0.0.1.jar").write_bytes(b"an older pin")
    for jar in (corrupted, missing):
        publish(maven, jar, (cache / jar.file_name).read_bytes())

    fetched: dict[str, int] = {}

    def progress(jar: PinnedJar, size: int) -> None:
        fetched[jar.file_name] = fetched.get(jar.file_name, 0) + size

    ensure_jars(root, progress, base_url)

    assert {name for name, size in fetched.items() if size} == {corrupted.file_name, missing.file_name}
    for jar in jars:
        assert hashlib.sha256((libs / jar.file_name).read_bytes()).hexdigest() == jar.sha256
    assert sorted(p.name for p in libs.iterdir()) == sorted(jar.file_name for jar in jars), "only pinned jars"

    # A server that sends something else than the pinned jar: refused, and nothing half-written stays behind.
    (libs / missing.file_name).unlink()
    publish(maven, missing, b"not the jar that was pinned")
    with pytest.raises(JarDownloadError, match="SHA-256"):
        ensure_jars(root, base_url=base_url)
    assert not (libs / missing.file_name).exists()
    assert [p.name for p in libs.iterdir() if p.suffix == ".part"] == []


def test_broker_command_creates_the_web_topics_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = cli_env(tmp_path) | {
        "RETREASURE_STREAMING__JARS_DIR": str(KAFKA_JARS),
        "RETREASURE_STREAMING__BROKER_DIR": str(tmp_path / "broker"),
        "RETREASURE_STREAMING__PARTITIONS": "4",
    }
    command = subprocess.Popen(
        [sys.executable, "-m", "retreasure", "broker", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert command.stdout is not None
        lines: list[str] = []
        shown = ""
        for line in command.stdout:
            lines.append(line)
            # Read as a person reads it: the console wraps at 80 columns, and with some lengths of the port, the
            # start-up time and the folder, "Ctrl-C" ends one line and "stops it" starts the next.
            shown = " ".join("".join(lines).split())
            if "Ctrl-C stops it" in shown:
                break
        assert "Ctrl-C stops it" in shown, shown
        address = shown.split(" broker on ", 1)[1].split()[0]
        topics = AdminClient({"bootstrap.servers": address}).list_topics(timeout=10).topics
        assert {name: len(topics[name].partitions) for name in ("web.clickstream", "web.transactions")} == {
            "web.clickstream": 4,
            "web.transactions": 4,
        }
        command.send_signal(signal.SIGTERM)
        rest, _ = command.communicate(timeout=60)
    finally:
        if command.poll() is None:
            command.kill()
    assert command.returncode == 0, rest
    assert "Broker stopped." in rest
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect((host, int(port)))
    assert os.path.exists(tmp_path / "broker" / "broker.log")


def test_a_killed_broker_keeps_its_messages_and_the_first_clean_stop_writes_the_class_archive(tmp_path: Path) -> None:
    jars = tmp_path / "jars"
    shutil.copytree(ensure_jars(KAFKA_JARS), jars / kafka_version() / "libs")
    broker = Broker(tmp_path / "broker", jars_root=jars)
    archives = jars / kafka_version()

    def archive_files() -> list[str]:
        return sorted(p.name for p in archives.iterdir() if p.is_file())

    try:
        broker.start()
        broker.create_topics(["test.crash"], partitions=3)
        sent = keyed("crash", keys=6, per_key=2)
        produce(broker.client_config(), "test.crash", sent)
        broker.kill()
        assert archive_files() == [], "a JVM killed before exiting leaves no archive, not even a partial one"

        broker.start()
        received = consume(broker.client_config(), "test.crash", "crash-readers", len(sent))
        assert sorted(m.value().decode() for m in received) == sorted(v for _, v in sent)
        broker.stop()
        (archive,) = archive_files()
        assert archive.endswith(".jsa")

        broker.start()
        assert broker.process is not None
        command_line = Path(f"/proc/{broker.process.pid}/cmdline").read_bytes().split(b"\0")
        assert f"-XX:SharedArchiveFile={archives / archive}".encode() in command_line
    finally:
        broker.stop()
    assert archive_files() == [archive], "a broker that read the archive does not write another"
