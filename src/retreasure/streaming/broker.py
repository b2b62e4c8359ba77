"""A single-node Apache Kafka broker on loopback, run by the platform itself: the stand-in for Azure Event Hubs'
Kafka endpoint in `retreasure broker`, the demo and the tests.

KRaft mode, one process as both broker and controller, its storage and log in a data folder of its own; the jars
come from ``jars.ensure_jars`` (pinned, checksummed). Optionally a second listener authenticates the way Event
Hubs does: SASL PLAIN, user ``$ConnectionString``, the namespace's connection string as password, over TLS with a
throw-away certificate or in plain text.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import ExitStack, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from retreasure.streaming.jars import PinnedJar, ensure_jars, kafka_version

__all__ = ["Broker", "BrokerFailed", "JavaNotFound", "ensure_jars"]

HOST = "127.0.0.1"
DEFAULT_JARS_ROOT = Path(".tools/kafka")
READY_LINE = "Kafka Server started"
EVENTHUBS_USER = "$ConnectionString"
# The listener that authenticates as Event Hubs does; the name is the broker's own label for it.
EVENTHUBS_LISTENER = "EVENTHUBS"
LOG_TAIL_LINES = 30
MAX_CAUSES = 12
# What Apache Kafka's own start script gives the JVM, less the heap: G1 with short pauses, no display.
JVM_OPTIONS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Xlog:cds=error",  # classes the class archive cannot hold (old bytecode) are normal, not worth a line each
)
ARCHIVE_WRITE_S = 60.0
# librdkafka's informational lines (an admin client's queue purged as it closes) are not for the console.
QUIET_CLIENT = {"log_level": "4"}


class JavaNotFound(RuntimeError):
    """No Java runtime to run the broker with: Java 17+ is a system requirement, as Python is."""


class BrokerFailed(RuntimeError):
    """The broker did not format, start or answer in time; the message quotes the end of its log."""


class Broker:
    """One Kafka broker process on loopback ports, with its data in ``data_dir``: a context manager that starts
    it (fetching the jars and formatting storage on first use) and stops it on exit.

    ``restart()`` keeps the ports and the data, so clients reconnect to the same address and find their topics,
    messages and committed offsets. On Linux the broker is stopped when the thread that started it ends (its
    parent-death signal), so a killed test run leaves no broker behind: start it from a thread that outlives it.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        jars_root: Path = DEFAULT_JARS_ROOT,
        java: str | Path | None = None,
        port: int | None = None,
        partitions: int = 3,
        heap_mb: int = 512,
        eventhubs_connection_string: str | None = None,
        tls: bool = False,
        ready_timeout_s: float = 120.0,
        stop_timeout_s: float = 30.0,
        progress: Callable[[PinnedJar, int], None] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.jars_root = jars_root.resolve()
        self.java = java
        self.partitions = partitions
        self.heap_mb = heap_mb
        self.eventhubs_connection_string = eventhubs_connection_string
        self.tls = tls
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.progress = progress
        wanted = [port or 0, 0] + ([0] if eventhubs_connection_string is not None else [])
        ports = _free_ports(wanted)
        self.port, self.controller_port = ports[0], ports[1]
        self.sasl_port = ports[2] if len(ports) > 2 else None
        self.process: subprocess.Popen[bytes] | None = None
        self._libs: Path | None = None
        self._java: str | None = None
        self._archive_being_written: Path | None = None
        self._ready = False

    # -- addresses -------------------------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """host:port of the plain-text listener."""
        return f"{HOST}:{self.port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        """host:port of the listener that authenticates as Event Hubs does."""
        if self.sasl_port is None:
            raise ValueError("this broker has no Event Hubs style listener: give it eventhubs_connection_string")
        return f"{HOST}:{self.sasl_port}"

    @property
    def ssl_ca_location(self) -> Path:
        """The PEM certificate clients trust for the TLS listener (self-signed, so it is its own authority)."""
        return self.data_dir / "tls" / "broker-cert.pem"

    @property
    def version(self) -> str:
        """The Apache Kafka version the jars pin."""
        return kafka_version()

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    def client_config(self, *, eventhubs: bool = False) -> dict[str, str]:
        """confluent-kafka settings that reach this broker: the plain listener, or the Event Hubs style one."""
        if not eventhubs:
            return {"bootstrap.servers": self.bootstrap_servers}
        config = {
            "bootstrap.servers": self.sasl_bootstrap_servers,
            "security.protocol": "SASL_SSL" if self.tls else "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": EVENTHUBS_USER,
            "sasl.password": self.eventhubs_connection_string or "",
        }
        if self.tls:
            config["ssl.ca.location"] = str(self.ssl_ca_location)
        return config

    # -- life cycle ------------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Fetch the jars if needed, format storage on first use, start the broker and wait until it answers."""
        if self.running:
            return
        self.stop()  # a broker that ended on its own: its class archive settled before a new one starts
        self._java = self._java or find_java(self.java)
        self._libs = self._libs or ensure_jars(self.jars_root, self.progress)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.tls and self.sasl_port is not None and not self.ssl_ca_location.exists():
            _write_self_signed_certificate(self.data_dir / "tls")
        properties = self.data_dir / "server.properties"
        properties.touch(mode=0o600)  # it holds the Event Hubs style listener's connection string
        properties.write_text(self._server_properties())
        (self.data_dir / "log4j2.properties").write_text(_log4j2_properties(self.log_file))
        if not (self.storage_dir / "meta.properties").exists():
            self._format(properties)
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        with (self.data_dir / "broker.out").open("ab") as console_output:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed argument list, no shell
                [*self._java_command(self._class_archive_options()), "kafka.Kafka", str(properties)],
                stdin=subprocess.DEVNULL,
                stdout=console_output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
            )
        self._ready = False
        try:
            self._wait_until_ready(log_start)
            self._ready = True
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM (a clean shutdown, logs flushed), then SIGKILL if it has not stopped in stop_timeout_s."""
        if self.process is None:
            return
        clean = True
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            # The first broker on a machine writes its class archive as it exits: give it the time.
            timeout_s = self.stop_timeout_s + (ARCHIVE_WRITE_S if self._archive_being_written else 0)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                clean = False
                self._signal(signal.SIGKILL)
                self.process.wait()
        # Only a broker that got as far as serving has loaded the classes worth archiving.
        self._settle_class_archive(clean and self._ready and self.process.returncode != -signal.SIGKILL)
        self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown, storage recovered on the next start."""
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGKILL)
            self.process.wait()
        self._settle_class_archive(False)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same ports and data."""
        self.stop()
        self.start()

    def create_topics(self, names: Iterable[str], partitions: int | None = None, timeout_s: float = 30.0) -> None:
        """Create the topics that do not exist yet (replication 1: there is one broker)."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(self.client_config() | QUIET_CLIENT)
        wanted = [NewTopic(name, num_partitions=partitions or self.partitions, replication_factor=1) for name in names]
        if not wanted:
            return
        for name, future in admin.create_topics(wanted, operation_timeout=timeout_s, request_timeout=timeout_s).items():
            try:
                future.result(timeout_s)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise BrokerFailed(f"could not create topic {name}: {exc.args[0].str()}") from exc

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the broker's log and of its console output (where the JVM reports what stops it)."""
        parts = []
        for path in (self.log_file, self.data_dir / "broker.out"):
            if path.exists() and path.stat().st_size:
                text = path.read_bytes()[-64_000:].decode("utf-8", "replace").splitlines()[-lines:]
                parts.append(f"--- {path} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts) or f"(no log in {self.data_dir})"

    # -- internals -------------------------------------------------------------------------------------------

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "kraft"

    def _java_command(self, class_archive: list[str] | None = None) -> list[str]:
        assert self._java is not None and self._libs is not None
        if class_archive is None:
            archive = self._class_archive()
            class_archive = [f"-XX:SharedArchiveFile={archive}"] if self._class_archive_usable(archive) else []
        return [
            self._java,
            f"-Xmx{self.heap_mb}m",
            f"-Xms{min(self.heap_mb, 128)}m",
            *JVM_OPTIONS,
            *class_archive,
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{self._libs}/*",
        ]

    # A class-data-sharing archive of the classes a broker loads halves its start (the JVM maps them instead of
    # reading and verifying 45 jars). The first broker on a machine writes it as it exits; it is valid for one
    # java binary and these very jar files, so it is named after the binary and dropped when a jar is newer.

    def _class_archive(self) -> Path:
        assert self._java is not None and self._libs is not None
        java = Path(self._java).resolve()
        stamp = hashlib.sha256(f"{java}:{java.stat().st_mtime_ns}".encode()).hexdigest()[:12]
        return self._libs.parent / f"classes-{stamp}.jsa"

    def _class_archive_usable(self, archive: Path) -> bool:
        assert self._libs is not None
        if not archive.exists():
            return False
        if archive.stat().st_mtime_ns < max(jar.stat().st_mtime_ns for jar in self._libs.glob("*.jar")):
            archive.unlink(missing_ok=True)
            return False
        return True

    def _class_archive_options(self) -> list[str]:
        archive = self._class_archive()
        if self._class_archive_usable(archive):
            return [f"-XX:SharedArchiveFile={archive}"]
        self._archive_being_written = archive.with_name(f"{archive.name}.{os.getpid()}.{id(self)}.part")
        return [f"-XX:ArchiveClassesAtExit={self._archive_being_written}"]

    def _settle_class_archive(self, exited_cleanly: bool) -> None:
        """Put the archive written at exit in place, or drop it when the JVM was killed while writing it."""
        written, self._archive_being_written = self._archive_being_written, None
        if written is None:
            return
        if exited_cleanly and written.exists() and written.stat().st_size:
            os.replace(written, written.with_name(written.name.split(".jsa.", 1)[0] + ".jsa"))
        else:
            written.unlink(missing_ok=True)

    def _server_properties(self) -> str:
        listeners = {"PLAINTEXT": self.port, "CONTROLLER": self.controller_port}
        protocols = {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT"}
        if self.sasl_port is not None:
            listeners[EVENTHUBS_LISTENER] = self.sasl_port
            protocols[EVENTHUBS_LISTENER] = "SASL_SSL" if self.tls else "SASL_PLAINTEXT"
        advertised = {name: port for name, port in listeners.items() if name != "CONTROLLER"}
        values: dict[str, str | int] = {
            "node.id": 1,
            "process.roles": "broker,controller",
            "listeners": ",".join(f"{name}://{HOST}:{port}" for name, port in listeners.items()),
            "advertised.listeners": ",".join(f"{name}://{HOST}:{port}" for name, port in advertised.items()),
            "listener.security.protocol.map": ",".join(f"{name}:{kind}" for name, kind in protocols.items()),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "log.dirs": str(self.storage_dir),
            "num.partitions": self.partitions,
            # One broker: every internal topic has one replica, and fewer partitions than a cluster's 50, which
            # the first consumer group or transaction would otherwise wait for.
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 5,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 5,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            # Messages carry their event time, which for a replayed period is months old: a time-based
            # retention would delete them at once. Kept until the topic is deleted.
            "log.retention.ms": -1,
            "num.network.threads": 2,
            "num.io.threads": 4,
        }
        if self.sasl_port is not None:
            prefix = f"listener.name.{EVENTHUBS_LISTENER.lower()}"
            secret = _jaas_quoted(self.eventhubs_connection_string or "")
            values[f"{prefix}.sasl.enabled.mechanisms"] = "PLAIN"
            values[f"{prefix}.plain.sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required user_{EVENTHUBS_USER}={secret};"
            )
            if self.tls:
                values[f"{prefix}.ssl.keystore.type"] = "PEM"
                values[f"{prefix}.ssl.keystore.location"] = str(self.data_dir / "tls" / "broker-keystore.pem")
        lines = ["# Written by retreasure at every start; edits are overwritten."]
        lines += [f"{key}={_properties_escaped(str(value))}" for key, value in values.items()]
        return "\n".join(lines) + "\n"

    def _format(self, properties: Path) -> None:
        formatted = subprocess.run(  # noqa: S603
            [*self._java_command(), "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(properties)],
            capture_output=True,
            text=True,
            check=False,
        )
        if formatted.returncode != 0:
            raise BrokerFailed(
                f"formatting the broker's storage in {self.storage_dir} failed (exit {formatted.returncode}):\n"
                + (formatted.stdout + formatted.stderr)[-4000:]
            )

    def _wait_until_ready(self, log_start: int) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise BrokerFailed(
                    f"the Kafka broker exited with code {self.process.returncode} while starting:\n"
                    + self._start_report(log_start)
                )
            if self._logged_since(log_start, READY_LINE):
                self._check_answers(max(deadline - time.monotonic(), 5.0), log_start)
                return
            time.sleep(0.2)
        raise BrokerFailed(
            f"the Kafka broker did not start within {self.ready_timeout_s:.0f} s "
            f"(no '{READY_LINE}' in {self.log_file}):\n{self._start_report(log_start)}"
        )

    def _logged_since(self, offset: int, text: str) -> bool:
        return text in self._log_since(offset)

    def _log_since(self, offset: int) -> str:
        if not self.log_file.exists():
            return ""
        with self.log_file.open("rb") as log:
            if log.seek(0, os.SEEK_END) < offset:  # the log rolled over since the start: read the new file whole
                offset = 0
            log.seek(offset)
            return log.read().decode("utf-8", "replace")

    def _start_report(self, log_start: int) -> str:
        """Why this start failed: the errors it logged and their root causes (a shutdown buries them under
        a hundred lines), then the end of the logs."""
        causes: list[str] = []
        for line in self._log_since(log_start).splitlines():
            if ("] ERROR " in line or "] FATAL " in line or line.startswith("Caused by: ")) and line not in causes:
                causes.append(line)
        report = "\n".join(causes[:MAX_CAUSES])
        return (report + "\n" if report else "") + self.log_tail(LOG_TAIL_LINES // 3)

    def _check_answers(self, timeout_s: float, log_start: int) -> None:
        """A metadata request through the client the platform uses: the listener is up, not just logged."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient(self.client_config() | QUIET_CLIENT).list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise BrokerFailed(
                f"the Kafka broker logged '{READY_LINE}' but does not answer on {self.bootstrap_servers}: "
                f"{exc.args[0].str()}\n{self._start_report(log_start)}"
            ) from exc

    def _signal(self, number: signal.Signals) -> None:
        assert self.process is not None
        with suppress(ProcessLookupError):  # it ended on its own meanwhile
            os.killpg(self.process.pid, number)


def find_java(java: str | Path | None = None) -> str:
    """The java executable: the one given, else $JAVA_HOME/bin/java, else `java` on the PATH."""
    if java is None:
        home = os.environ.get("JAVA_HOME")
        java = Path(home) / "bin" / "java" if home else "java"
    found = shutil.which(str(java))
    if found is None:
        raise JavaNotFound(
            f"Java not found ({java}): the Kafka broker needs a Java 17+ runtime "
            "(e.g. `apt-get install openjdk-17-jre-headless`, or set JAVA_HOME)"
        )
    return found


def _free_ports(wanted: list[int]) -> list[int]:
    """The ports asked for, with each 0 replaced by a distinct free loopback port."""
    with ExitStack() as stack:
        ports = []
        for port in wanted:
            if port:
                ports.append(port)
                continue
            probe = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind((HOST, 0))
            ports.append(probe.getsockname()[1])
        return ports


def _cluster_id() -> str:
    """A new cluster id as Kafka writes one (`StorageTool random-uuid`), without starting a JVM for it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka's own rule: an id must not read as a command-line option
            return text


def _jaas_quoted(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("a connection string has no line breaks")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _properties_escaped(value: str) -> str:
    return value.replace("\\", "\\\\")


def _log4j2_properties(log_file: Path) -> str:
    """The broker logs to one file in its data folder, rolled at 10 MB, three kept; nothing on the console."""
    pattern = f"{log_file.parent}/broker-%i.log"
    return f"""status = warn
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {_properties_escaped(str(log_file))}
appender.file.filePattern = {_properties_escaped(pattern)}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def _write_self_signed_certificate(folder: Path) -> None:
    """A throw-away key and certificate for 127.0.0.1/localhost: the broker's PEM key store, and the
    certificate alone for clients to trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    keystore = folder / "broker-keystore.pem"
    keystore.write_bytes(key_pem + certificate_pem)
    keystore.chmod(0o600)
    # Written last: its presence says the pair is complete.
    (folder / "broker-cert.pem").write_bytes(certificate_pem)


def _stop_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGTERM when the starting thread ends."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1
# Looked up before any fork: the child between fork and exec must not load libraries.
_PRCTL: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else (lambda *_: 0)
