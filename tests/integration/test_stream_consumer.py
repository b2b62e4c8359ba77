"""`retreasure stream` against the real broker, as a subprocess: keyed web events over 3-partition topics (with a
producer's duplicates, malformed and oversized messages) land in bronze exactly once, through kill -9 and
restarts, resuming from the offsets the tables hold."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from retreasure.lake import Lake, TableRef
from retreasure.streaming import offsets
from retreasure.streaming.broker import Broker
from tests.helpers import cli_env

pytestmark = pytest.mark.kafka
CLICKSTREAM, TRANSACTIONS = TableRef("bronze", "web_clickstream"), TableRef("bronze", "web_transactions")
MAX_LINE_BYTES = 4096


def produce(broker: Broker, topic: str, messages: list[tuple[str, bytes]]) -> None:
    failures: list[str] = []

    def delivered(error: KafkaError | None, message: Any) -> None:
        if error is not None:
            failures.append(error.str())

    producer = Producer(broker.client_config() | {"acks": "all", "linger.ms": 5})
    for key, value in messages:
        producer.produce(topic, value=value, key=key.encode(), on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0 and failures == []


def web_events(
    broker: Broker, name: str, clicks: int, payments: int, chunks: int = 1, ids: str = ""
) -> dict[TableRef, set[bytes]]:
    """Produce keyed clickstream and transaction messages, each distinct value once, then a producer's retries
    of some (the same value again at a later offset), malformed and oversized ones; returns the distinct values
    per table: what bronze must hold, each once. ``chunks`` > 1: produced in that many parts, a second apart."""
    clickstream, transactions = f"{name}.clickstream", f"{name}.transactions"
    broker.create_topics([clickstream, transactions], partitions=3)
    click = [
        (
            f"session-{n % 97}",
            json.dumps(
                {
                    "type": "track",
                    "messageId": f"{name}{ids}-e{n}",
                    "timestamp": f"2025-03-0{1 + n % 3}T{n % 24:02d}:{n % 60:02d}:00.{n % 1000:03d}Z",
                    "context": {"ip": f"192.0.2.{n % 250 + 1}", "traits": {"email": f"buyer{n % 300}@example.com"}},
                    "properties": {"session_id": f"session-{n % 97}"},
                }
            ).encode(),
        )
        for n in range(clicks)
    ]
    click += [(f"session-{n}", b'{"messageId": "broken-' + str(n).encode() + b'"') for n in range(0, clicks, 150)]
    click.append(("session-0", b'{"messageId": "huge", "blob": "' + b"x" * (2 * MAX_LINE_BYTES) + b'"}'))
    pay = [(f"order-{n // 2}", json.dumps(payment(name + ids, n)).encode()) for n in range(payments)]
    click_all = click + click[::40]  # the retries come later, at other offsets
    pay_all = pay + pay[::25] + [("order-x", b"not json at all")]
    for part in range(chunks):
        produce(broker, clickstream, click_all[part::chunks])
        produce(broker, transactions, pay_all[part::chunks])
        time.sleep(1 if chunks > 1 else 0)
    return {CLICKSTREAM: {v for _, v in click}, TRANSACTIONS: {v for _, v in pay} | {b"not json at all"}}


def payment(name: str, n: int) -> dict[str, str]:
    return {
        "transaction_id": f"{name}-t{n}",
        "order_id": f"order-{n // 2}",
        "amount": f"{n}.50",
        "status": "captured" if n % 2 else "authorized",
        "occurred_at": f"2025-03-02T10:{n % 60:02d}:00Z",
    }


def stream_env(root: Path, broker: Broker, name: str, group: str) -> dict[str, str]:
    return cli_env(
        root,
        RETREASURE_LOG_FILE="-",
        RETREASURE_STREAMING__BOOTSTRAP_SERVERS=broker.bootstrap_servers,
        RETREASURE_STREAMING__CLICKSTREAM_TOPIC=f"{name}.clickstream",
        RETREASURE_STREAMING__TRANSACTIONS_TOPIC=f"{name}.transactions",
        RETREASURE_STREAMING__GROUP_ID=group,
        RETREASURE_STREAMING__BATCH_MESSAGES="300",
        RETREASURE_STREAMING__OPS_INTERVAL_S="0.5",
        RETREASURE_INGEST__MAX_LINE_BYTES=str(MAX_LINE_BYTES),
    )


def stream(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "retreasure", "stream", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    return finished(process)[0]


def finished(process: subprocess.Popen[str]) -> tuple[str, str]:
    """(stdout, stderr: the JSON log lines) of a stream that ended well."""
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, out + err
    return out, err


# Waits are on conditions, with deadlines a busy machine (the rest of the suite beside these tests) does not reach.
WAIT_S = 240.0


def wait_for(condition: Callable[[], bool], every_s: float = 0.05) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(every_s)


def landed_to_the_end(lake: Lake, broker: Broker, name: str) -> bool:
    """Whether both bronze tables hold the offset of the last message of each partition of their topic."""
    for table, topic in ((CLICKSTREAM, f"{name}.clickstream"), (TRANSACTIONS, f"{name}.transactions")):
        ends = broker_ends(broker, topic)
        if not lake.exists(table) or offsets.stored_offsets(lake, table, topic, range(3)) != ends:
            return False
    return True


def broker_ends(broker: Broker, topic: str) -> dict[int, int]:
    """Each non-empty partition's last offset."""
    consumer = Consumer(broker.client_config() | {"group.id": f"ends-{uuid.uuid4().hex}"})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(3)}
    finally:
        consumer.close()
    return {p: end - 1 for p, end in ends.items() if end > 0}


def assert_exactly_once(lake: Lake, expected: dict[TableRef, set[bytes]]) -> None:
    for table, values in expected.items():
        rows = lake.query(f"SELECT record_hash, origin, raw, error FROM {table}", [table]).to_pylist()
        assert len(rows) == len(values), f"{table}: {len(rows)} rows for {len(values)} distinct messages"
        assert len({r["record_hash"] for r in rows}) == len(rows) and len({r["origin"] for r in rows}) == len(rows)
    keys = lake.query(f"SELECT record_key FROM {CLICKSTREAM} WHERE error IS NULL", [CLICKSTREAM]).column(0)
    wanted = {json.loads(v)["messageId"] for v in expected[CLICKSTREAM] if v.endswith(b"}}")}
    assert set(keys.to_pylist()) == wanted


def test_the_stream_lands_every_message_once_and_a_rerun_lands_nothing(tmp_path: Path, kafka_broker: Broker) -> None:
    name = f"t{uuid.uuid4().hex[:8]}"
    expected = web_events(kafka_broker, name, clicks=1500, payments=400)
    env = stream_env(tmp_path, kafka_broker, name, group=f"{name}-a")
    out = finish(stream(tmp_path, env, "--until-idle", "3", "--max-seconds", "180"))
    assert "Landed" in out
    lake = Lake(tmp_path / "lake")
    assert_exactly_once(lake, expected)
    # The tables hold every partition's last offset; quarantine the malformed and oversized messages, with why.
    for table, topic in ((CLICKSTREAM, f"{name}.clickstream"), (TRANSACTIONS, f"{name}.transactions")):
        assert set(offsets.stored_offsets(lake, table, topic, range(3))) == {0, 1, 2}
    reasons = lake.query("SELECT reason FROM quarantine.web_clickstream").column(0).to_pylist()
    assert len(reasons) == 11 and sum(r.startswith("oversized: message of") for r in reasons) == 1
    batches = lake.query("SELECT sum(messages) AS m, sum(new_rows) AS n, count(*) AS b FROM ops.stream_batches")
    produced = 1500 + 10 + 1 + len(range(0, 1511, 40)) + 400 + 16 + 1
    assert batches.to_pylist() == [{"m": produced, "n": 1511 + 401, "b": batches.column("b")[0].as_py()}]
    # A new consumer group (no offsets of its own) resumes from the tables' offsets: nothing lands twice.
    again = finish(stream(tmp_path, env | {"RETREASURE_STREAMING__GROUP_ID": f"{name}-b"}, "--until-idle", "3"))
    assert "Landed 0 messages" in again
    assert_exactly_once(lake, expected)


def test_kill_9_at_any_moment_then_a_restart_still_lands_each_message_once(
    tmp_path: Path, kafka_broker: Broker
) -> None:
    name = f"t{uuid.uuid4().hex[:8]}"
    expected = web_events(kafka_broker, name, clicks=4000, payments=600)
    log_dir = tmp_path / "lake" / "bronze" / "web_clickstream" / "_delta_log"

    def run_env(run: int) -> dict[str, str]:
        # A group per run: a restart in the killed one's group would wait for its session to expire (45 s) before
        # it got partitions, and what it resumes from is the tables' offsets, never a group's.
        return stream_env(tmp_path, kafka_broker, name, group=f"{name}-k{run}")

    for run, commits in enumerate((1, 4, 9)):  # killed after this many commits to the clickstream table
        process = stream(tmp_path, run_env(run), "--max-seconds", "180")
        wait_for(lambda: len(list(log_dir.glob("*.json"))) >= commits)  # noqa: B023 - waited for in this iteration
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL, "it had stopped on its own before the kill"
    finish(stream(tmp_path, run_env(3), "--until-idle", "3", "--max-seconds", "180"))
    assert_exactly_once(Lake(tmp_path / "lake"), expected)


def test_sigterm_lands_what_is_buffered_and_stops(tmp_path: Path, kafka_broker: Broker) -> None:
    name = f"t{uuid.uuid4().hex[:8]}"
    expected = web_events(kafka_broker, name, clicks=300, payments=50)
    env = stream_env(tmp_path, kafka_broker, name, group=f"{name}-s")
    process = stream(tmp_path, env)
    lake = Lake(tmp_path / "lake")
    # Stopped once it has taken every message (the tables hold each partition's last offset): however busy the
    # machine, a SIGTERM then must still end it cleanly, with what it landed counted and nothing twice.
    wait_for(lambda: landed_to_the_end(lake, kafka_broker, name))
    assert process.poll() is None, "it had stopped on its own before the SIGTERM"
    process.send_signal(signal.SIGTERM)
    assert "Landed" in finish(process)
    assert_exactly_once(lake, expected)


def test_two_streams_of_one_group_share_the_partitions_and_land_each_message_once(
    tmp_path: Path, kafka_broker: Broker
) -> None:
    name = f"t{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topics([f"{name}.clickstream", f"{name}.transactions"], partitions=3)
    env = stream_env(tmp_path, kafka_broker, name, group=f"{name}-g")
    # The first waits long for more (30 s idle): however slow the second is to start on a busy machine, it is
    # still there to give partitions up.
    first = stream(tmp_path, env, "--until-idle", "30", "--max-seconds", "240")
    expected: dict[TableRef, set[bytes]] = {}
    producing = threading.Thread(target=lambda: expected.update(web_events(kafka_broker, name, 3000, 300, chunks=12)))
    producing.start()
    # The second joins once the first has landed a batch (it holds partitions): they move between them (a rebalance).
    wait_for(lambda: Lake(tmp_path / "lake").exists(CLICKSTREAM))
    second = stream(tmp_path, env, "--until-idle", "8", "--max-seconds", "240")
    producing.join()
    outputs = [finished(p) for p in (first, second)]
    landed = [int(re.search(r"Landed ([\d,]+) messages", out).group(1).replace(",", "")) for out, _ in outputs]
    assert sum(landed) == 3000 + 20 + 1 + 76 + 300 + 12 + 1
    # The second's arrival took partitions from the first mid-stream (how many it then landed depends on timing).
    assert "partitions revoked" in outputs[0][1] and "partitions assigned" in outputs[1][1]
    assert_exactly_once(Lake(tmp_path / "lake"), expected)


def test_a_broker_restart_mid_stream_loses_nothing_and_repeats_nothing(tmp_path: Path, kafka_broker: Broker) -> None:
    name = f"t{uuid.uuid4().hex[:8]}"
    first_half = web_events(kafka_broker, name, clicks=1500, payments=200)
    env = stream_env(tmp_path, kafka_broker, name, group=f"{name}-r")
    # No idle stop: the stream runs until it has landed both halves, then gets SIGTERM. Its log goes to a file:
    # while the broker is down its client logs a refused connection every 50 ms, which filled a pipe nobody read
    # until the end and blocked the stream on its next log line, so that it never landed the second half.
    log_file = tmp_path / "stream.log"
    with log_file.open("w") as log_output:
        process = subprocess.Popen(
            [sys.executable, "-m", "retreasure", "stream", "--max-seconds", str(2 * WAIT_S)],
            cwd=tmp_path,
            env=env,
            stdout=log_output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    log_dir = tmp_path / "lake" / "bronze" / "web_clickstream" / "_delta_log"
    wait_for(lambda: len(list(log_dir.glob("*.json"))) >= 2)
    kafka_broker.restart()  # same ports, same data: the stream's client reconnects by itself
    second_half = web_events(kafka_broker, name, clicks=1000, payments=100, ids="-after-restart")
    lake = Lake(tmp_path / "lake")
    try:
        wait_for(lambda: landed_to_the_end(lake, kafka_broker, name))
    except AssertionError as waited:
        process.kill()
        process.wait(60)
        log = log_file.read_text()[-4000:]
        raise AssertionError(f"not all landed after the broker's restart; the stream's log:\n{log}") from waited
    process.send_signal(signal.SIGTERM)
    assert process.wait(240) == 0, log_file.read_text()[-3000:]
    expected = {table: first_half[table] | second_half[table] for table in first_half}
    assert_exactly_once(lake, expected)
