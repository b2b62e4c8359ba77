"""From the stream to silver and gold: the simulated web shop's wire (every fault on) lands in micro-batches, each
followed by a micro-build of what the streamed tables feed; the result equals a full batch build of the same
bronze, row for row, with a session open in one micro-batch and closed in the next, and events days late that
are built all the same and counted."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import threading
import uuid
import zlib
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import pytest
from confluent_kafka import Producer

from retreasure.bronze.pii import PiiMasker
from retreasure.engine.build import build_models, lookback_of
from retreasure.engine.changes import BUILDS, watermark
from retreasure.engine.models import downstream, load_models
from retreasure.exitcodes import ExitCode
from retreasure.lake import Lake, TableRef
from retreasure.streaming.broker import Broker
from retreasure.streaming.dedup import VaultTokens
from retreasure.streaming.landing import LandedBatch, Message, TopicLanding
from retreasure.streaming.microbuild import STREAM_BUILDS, MicroBuild, MicroBuilds
from retreasure_sim.config import StreamFaults
from retreasure_sim.model import Truth
from retreasure_sim.streaming.wire import WireMessage, WireTopics, wire_messages
from tests.conftest import FAULTY, HMAC_KEY, VAULT_KEY
from tests.helpers import cli_env, rows_without

CLICKSTREAM, TRANSACTIONS = TableRef("bronze", "web_clickstream"), TableRef("bronze", "web_transactions")
STREAMED = (CLICKSTREAM, TRANSACTIONS)
TOPICS = WireTopics()
PARTITIONS = 3
LAST_DAY = FAULTY.start + timedelta(days=FAULTY.days - 1)
HISTORY_END = datetime.combine(LAST_DAY - timedelta(days=2), time(), UTC)  # the first micro-batch: all before
SLICE = timedelta(hours=6)  # then a micro-batch per six hours of the site's clock
LATE_DAY = FAULTY.start + timedelta(days=2)  # a session's middle event and a payment of this day come at the end
WIRE = StreamFaults(duplicates=0.02, out_of_order=0.03, late=0.01, malformed=0.01, oversized=0.0005, schema_drift=0.03)
VOLATILE = ("run_id",)


def _held_back(messages: list[WireMessage]) -> set[int]:
    """The messages that arrive days late: the middle event of a session of LATE_DAY with five events or more
    (its session is two until it comes, if the gap it leaves is long enough), and a payment of that day."""
    by_session: dict[bytes, list[WireMessage]] = defaultdict(list)
    payment = None
    for m in messages:
        if m.event_time.date() == LATE_DAY and not m.faults:
            if m.topic == TOPICS.clickstream:
                by_session[m.key].append(m)
            elif payment is None:
                payment = m
    assert payment is not None
    long_sessions = [e for e in by_session.values() if len(e) >= 5]
    events = max(long_sessions, key=lambda e: max(b.event_time - a.event_time for a, b in itertools.pairwise(e)))
    # The event after the longest gap of the session: without it, the session may end early.
    gaps = [(b.event_time - a.event_time, i + 1) for i, (a, b) in enumerate(itertools.pairwise(events[:-1]))]
    return {events[max(gaps)[1]].seq, payment.seq}


def _micro_batches(truth: Truth) -> list[list[WireMessage]]:
    """The wire in the order the site sends it, cut by the site's clock: everything before HISTORY_END, then six
    hours at a time; the held-back messages come with the last batch."""
    messages = list(wire_messages(truth, WIRE, truth.seed))
    late = _held_back(messages)
    batches: list[list[WireMessage]] = [[]]
    cut = HISTORY_END
    for m in messages:
        if m.seq in late:
            continue
        while m.sent_at >= cut:
            batches.append([])
            cut += SLICE
        batches[-1].append(m)
    batches[-1].extend(m for m in messages if m.seq in late)
    return [b for b in batches if b]


class Wire:
    """The site's messages as a consumer receives them: on partitions by key, with offsets, produce times."""

    def __init__(self, lake: Lake) -> None:
        masker, vault = PiiMasker(HMAC_KEY, VAULT_KEY), VaultTokens(lake)
        self.landings = {topic: TopicLanding(lake, masker, topic, vault=vault) for topic in TOPICS}
        self.next_offset: dict[tuple[str, int], int] = defaultdict(int)

    def land(self, batch: list[WireMessage], number: int, builds: MicroBuilds) -> None:
        by_topic: dict[str, list[Message]] = defaultdict(list)
        for m in batch:
            partition = zlib.crc32(m.key) % PARTITIONS
            offset = self.next_offset[m.topic, partition]
            self.next_offset[m.topic, partition] += 1
            by_topic[m.topic].append(Message(m.topic, partition, offset, m.value, int(m.sent_at.timestamp() * 1000)))
        for topic, messages in by_topic.items():
            landing = self.landings[topic]
            builds.landed(landing.land(messages, f"b{number:03d}/{landing.table.name}"))


@pytest.fixture(scope="module")
def streamed(
    bronze_lake: tuple[Truth, Lake], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Lake, list[MicroBuild], list[dict[str, int]], list[list[WireMessage]]]:
    """The faulty business's lake with the web shop's events taken out of it, then streamed back in micro-batches
    with a micro-build after each; and each build's view of the sessions (key: events) of the last days."""
    truth, source = bronze_lake
    lake = Lake(shutil.copytree(source.uri, tmp_path_factory.mktemp("stream-build") / "lake"))
    for ref in (*STREAMED, TableRef("quarantine", "web_clickstream"), TableRef("quarantine", "web_transactions")):
        shutil.rmtree(lake.table_uri(ref), ignore_errors=True)  # the web shop now comes by the stream only
    batches = _micro_batches(truth)
    wire, builds = Wire(lake), MicroBuilds(lake, STREAMED, every_s=60)
    done, sessions = [], []
    for number, batch in enumerate(batches):
        wire.land(batch, number, builds)
        done.append(builds.build_now())
        recent = lake.query(
            "SELECT session_key, event_count FROM silver.sessions WHERE session_date >= $day",
            [TableRef("silver", "sessions")],
            {"day": LATE_DAY - timedelta(days=1)},
        ).to_pylist()
        sessions.append({r["session_key"]: r["event_count"] for r in recent})
    return lake, done, sessions, batches


@pytest.fixture(scope="module")
def batch_built(streamed: tuple[Lake, list[MicroBuild], list, list], tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The same bronze, built in full as the batch path builds it."""
    lake = Lake(shutil.copytree(streamed[0].uri, tmp_path_factory.mktemp("batch-build") / "lake"))
    assert not build_models(lake).blocked
    return lake


def test_the_streamed_tables_equal_a_batch_build_of_the_same_events(
    streamed: tuple[Lake, list[MicroBuild], list, list], batch_built: Lake
) -> None:
    lake, done, _, batches = streamed
    assert len(batches) >= 8 and [d.status for d in done] == ["success"] * len(done), [d.error for d in done]
    assert done[0].mode == "full" and {d.mode for d in done[1:]} == {"downstream"}
    fed = downstream(load_models(), set(STREAMED))
    assert {
        TableRef("silver", "web_events"),
        TableRef("silver", "sessions"),
        TableRef("gold", "fct_web_sessions"),
    } < fed
    for ref in sorted(fed | {TableRef("silver", "online_transactions")}):
        expected, got = rows_without(batch_built, ref, VOLATILE), rows_without(lake, ref, VOLATILE)
        assert got == expected, f"{ref}: {len(got)} rows streamed, {len(expected)} in a batch build"
        assert got, f"{ref} is empty: nothing was compared"


def test_a_micro_build_builds_only_what_the_streamed_tables_feed(
    streamed: tuple[Lake, list[MicroBuild], list, list],
) -> None:
    lake, done, _, _ = streamed
    models = load_models()
    fed = downstream(models, set(STREAMED))
    log = lake.query(f"SELECT run_id, mode, bronze_versions, windows FROM {BUILDS} ORDER BY started_at", [BUILDS])
    rows = {r["run_id"]: r for r in log.to_pylist()}
    for build in done[1:]:
        row = rows[build.run_id]
        assert set(json.loads(row["bronze_versions"])) == {str(t) for t in STREAMED}
        assert {TableRef.parse(m) for m in json.loads(row["windows"])} <= fed
    # The watermark moved for the streamed tables only: every other table is where the first (full) build left it.
    first = json.loads(rows[done[0].run_id]["bronze_versions"])
    now = watermark(lake)
    assert now is not None and set(now) == set(first)
    assert {t: v for t, v in now.items() if t not in {str(s) for s in STREAMED}} == {
        t: v for t, v in first.items() if t not in {str(s) for s in STREAMED}
    }
    assert all(now[str(t)] == lake.delta(t).version() for t in STREAMED)


def test_a_session_open_in_one_micro_batch_is_completed_by_the_next(
    streamed: tuple[Lake, list[MicroBuild], list, list], batch_built: Lake
) -> None:
    _, _, sessions, _ = streamed
    final = {
        r["session_key"]: r["event_count"]
        for r in batch_built.query("SELECT session_key, event_count FROM silver.sessions").to_pylist()
    }
    grown = {
        key
        for before, after in itertools.pairwise(sessions)
        for key, events in before.items()
        if key in after and after[key] > events
    }
    assert grown, "no session spanned two micro-batches"
    assert all(key in final for key in grown)


def test_events_days_late_are_built_and_counted(
    streamed: tuple[Lake, list[MicroBuild], list, list], batch_built: Lake
) -> None:
    lake, done, _, batches = streamed
    models = load_models()
    held_back = [m for m in batches[-1] if m.event_time.date() == LATE_DAY]
    assert {m.topic for m in held_back} == set(TOPICS)
    # Each micro-build counted exactly the rows its batch landed for a day older than the newest day its table
    # held before, less the lookback of what the table feeds.
    for number, build in enumerate(done[1:], start=1):
        for ref in STREAMED:
            landed = lake.query(
                f"SELECT partition_date AS day, count(*) AS n FROM {ref} WHERE batch_id LIKE $batch GROUP BY 1",
                [ref],
                {"batch": f"b{number:03d}/%"},
            ).to_pylist()
            newest = lake.query(
                f"SELECT max(partition_date) AS d FROM {ref} WHERE batch_id < $batch",
                [ref],
                {"batch": f"b{number:03d}"},
            ).to_pylist()[0]["d"]
            assert build.arrived.get(str(ref), {}) == {r["day"]: r["n"] for r in landed}
            late = {r["day"]: r["n"] for r in landed if newest and (newest - r["day"]).days > lookback_of(models, ref)}
            assert build.late.get(str(ref), {}) == dict(sorted(late.items())), (number, ref)
    last = done[-1]
    assert all(LATE_DAY in last.late[str(ref)] for ref in STREAMED)
    stored = lake.query(
        f"SELECT late_rows, late FROM {STREAM_BUILDS} WHERE run_id = $id", [STREAM_BUILDS], {"id": last.run_id}
    ).to_pylist()
    assert stored[0]["late_rows"] == last.late_rows >= 2 and LATE_DAY.isoformat() in stored[0]["late"]
    # Built as the batch path builds them: the late event and payment are in silver, in their own day.
    event_ids = [json.loads(m.value)["messageId"] for m in held_back if m.topic == TOPICS.clickstream]
    found = lake.query(
        "SELECT event_date FROM silver.web_events WHERE event_id = $id",
        [TableRef("silver", "web_events")],
        {"id": event_ids[0]},
    ).to_pylist()
    assert found == [{"event_date": LATE_DAY}]
    payment = next(json.loads(m.value)["transaction_id"] for m in held_back if m.topic == TOPICS.transactions)
    found = lake.query(
        "SELECT occurred_date FROM silver.online_transactions WHERE transaction_id = $id",
        [TableRef("silver", "online_transactions")],
        {"id": payment},
    ).to_pylist()
    assert found == [{"occurred_date": LATE_DAY}]


def _new_event(lake: Lake, like: WireMessage, number: int) -> LandedBatch:
    """A page view nobody sent before, landed on a partition of its own."""
    record = {**json.loads(like.value), "messageId": f"fresh-{number}"}
    message = Message(TOPICS.clickstream, 10 + number, 0, json.dumps(record).encode(), None)
    landing = TopicLanding(lake, PiiMasker(HMAC_KEY, VAULT_KEY), TOPICS.clickstream)
    return landing.land([message], f"fresh-{number}")


def _has_event(lake: Lake, event_id: str) -> bool:
    sql = "SELECT count(*) AS n FROM silver.web_events WHERE event_id = $id"
    return lake.query(sql, [TableRef("silver", "web_events")], {"id": event_id}).to_pylist()[0]["n"] == 1


def test_the_cadence_builds_what_landed_and_once_more_on_stop(
    streamed: tuple[Lake, list[MicroBuild], list, list], tmp_path: Path
) -> None:
    lake, _, _, batches = streamed
    lake = Lake(shutil.copytree(lake.uri, tmp_path / "lake"))
    like = next(m for m in batches[-2] if m.topic == TOPICS.clickstream and not m.faults)
    idle = MicroBuilds(lake, STREAMED, every_s=0.1)
    idle.start()
    idle.stop()
    assert idle.totals.builds == 0, "nothing landed: nothing to build"

    ticking = MicroBuilds(lake, STREAMED, every_s=0.2)
    ticking.start()
    ticking.landed(_new_event(lake, like, 1))
    waited = 0.0
    while ticking.totals.builds == 0 and waited < 300:  # a tick comes within 0.2 s; the build takes seconds
        threading.Event().wait(0.2)
        waited += 0.2
    ticking.stop()
    assert ticking.totals.builds == 1 and _has_event(lake, "fresh-1")

    stopping = MicroBuilds(lake, STREAMED, every_s=3600)
    stopping.start()
    stopping.landed(_new_event(lake, like, 2))
    stopping.stop()
    assert stopping.totals.builds == 1 and _has_event(lake, "fresh-2"), "what landed last is built on stop"


@pytest.mark.kafka
def test_retreasure_stream_builds_every_few_seconds_and_reports_to_dagster(
    streamed: tuple[Lake, list[MicroBuild], list, list], tmp_path: Path, kafka_broker: Broker
) -> None:
    """The command: a broker's messages landed, built by the cadence and on stop, each model run in Dagster."""
    lake, _, _, batches = streamed
    shutil.copytree(lake.uri, tmp_path / "lake")
    lake = Lake(tmp_path / "lake")
    name = f"build{uuid.uuid4().hex[:6]}"
    kafka_broker.create_topics([f"{name}.clickstream", f"{name}.transactions"], partitions=3)
    like = [m for m in batches[-2] if m.topic == TOPICS.clickstream and not m.faults][:20]
    fresh = [{**json.loads(m.value), "messageId": f"{name}-{n}"} for n, m in enumerate(like)]
    producer = Producer(kafka_broker.client_config() | {"acks": "all"})
    for m, record in zip(like, fresh, strict=True):
        producer.produce(f"{name}.clickstream", value=json.dumps(record).encode(), key=m.key)
    assert producer.flush(60) == 0
    dagster = tmp_path / "dagster"
    env = cli_env(
        tmp_path,
        RETREASURE_LOG_FILE="-",
        RETREASURE_STREAMING__BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers,
        RETREASURE_STREAMING__CLICKSTREAM_TOPIC=f"{name}.clickstream",
        RETREASURE_STREAMING__TRANSACTIONS_TOPIC=f"{name}.transactions",
        RETREASURE_STREAMING__GROUP_ID=name,
        RETREASURE_STREAMING__BUILD_EVERY_S="1",
        DAGSTER_HOME=str(dagster),
    )
    done = subprocess.run(
        [sys.executable, "-m", "retreasure", "stream", "--until-idle", "4", "--max-seconds", "240"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "0 failed, 0 stopped by a blocking check" in done.stdout
    events = lake.query(
        "SELECT event_id FROM silver.web_events WHERE event_id LIKE $name",
        [TableRef("silver", "web_events")],
        {"name": f"{name}-%"},
    )
    assert sorted(events.column(0).to_pylist()) == sorted(r["messageId"] for r in fresh)
    builds = lake.query(f"SELECT run_id, status, mode FROM {STREAM_BUILDS} ORDER BY started_at", [STREAM_BUILDS])
    last = builds.to_pylist()[-1]
    assert last["status"] == "success" and last["mode"] == "downstream"
    instance = dg.DagsterInstance.from_config(str(dagster))
    try:
        records = instance.fetch_materializations(dg.AssetKey(["silver", "web_events"]), limit=100).records
        assert last["run_id"] in {r.asset_materialization.metadata["build"].value for r in records}
    finally:
        instance.dispose()
