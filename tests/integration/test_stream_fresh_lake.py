"""A new lake that the stream fills first (web events and transactions only, no other source landed yet) builds
what the streamed tables feed: the models whose other inputs are missing are skipped, and said so; the next
micro-build takes only what landed since; silver equals a batch build of the same models."""

from __future__ import annotations

import logging
import shutil
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

from retreasure.bronze.pii import PiiMasker
from retreasure.engine.build import build
from retreasure.engine.changes import BUILDS
from retreasure.lake import Lake, TableRef
from retreasure.streaming.dedup import VaultTokens
from retreasure.streaming.landing import Message, TopicLanding
from retreasure.streaming.microbuild import MicroBuilds
from retreasure_sim.config import StreamFaults
from retreasure_sim.model import Truth
from retreasure_sim.streaming.wire import WireTopics, wire_messages
from tests.conftest import FAULTY, HMAC_KEY, VAULT_KEY
from tests.helpers import rows_without

STREAMED = (TableRef("bronze", "web_clickstream"), TableRef("bronze", "web_transactions"))
WEB_SILVER = [
    TableRef("silver", "web_events"),
    TableRef("silver", "sessions"),
    TableRef("silver", "online_transactions"),
]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_lake_with_only_the_streamed_tables_builds_what_they_feed(faulty_truth: Truth, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    topics = WireTopics()
    masker, vault = PiiMasker(HMAC_KEY, VAULT_KEY), VaultTokens(lake)
    landings = {topic: TopicLanding(lake, masker, topic, vault=vault) for topic in topics}
    middle = FAULTY.start.toordinal() + FAULTY.days // 2
    halves: list[dict[str, list[Message]]] = [defaultdict(list), defaultdict(list)]
    offsets: dict[str, int] = defaultdict(int)
    for m in wire_messages(faulty_truth, StreamFaults(), faulty_truth.seed):
        half = halves[m.sent_at.date().toordinal() >= middle]
        half[m.topic].append(Message(m.topic, 0, offsets[m.topic], m.value, int(m.sent_at.timestamp() * 1000)))
        offsets[m.topic] += 1

    builds = MicroBuilds(lake, STREAMED, every_s=60)
    heard = Records()
    engine_log = logging.getLogger("retreasure.engine")
    level = engine_log.level
    engine_log.setLevel(logging.INFO)  # setLevel, not the attribute: it clears the loggers' cached levels
    engine_log.addHandler(heard)
    try:
        done = []
        for number, half in enumerate(halves):
            for topic, messages in half.items():
                builds.landed(landings[topic].land(messages, f"h{number}"))
            done.append(builds.build_now())
    finally:
        engine_log.removeHandler(heard)
        engine_log.setLevel(level)

    assert [(d.status, d.mode) for d in done] == [("success", "downstream")] * 2, [d.error for d in done]
    skipped = {
        r.__dict__["model"]: r.__dict__["missing"] for r in heard.records if r.msg == "model skipped: inputs not built"
    }
    # The web shop's session facts join orders, the marketing mart ad spend: neither source has landed.
    assert "gold.fct_web_sessions" in skipped and "silver.orders" in skipped["gold.fct_web_sessions"]
    for ref in WEB_SILVER:
        assert lake.exists(ref), f"{ref} was not built"
    assert not lake.exists(TableRef("gold", "fct_web_sessions"))
    # The second micro-build took only the second half's days, from where the first stopped.
    first, second = done
    assert first.arrived and second.arrived
    for table in (str(t) for t in STREAMED):
        assert min(second.arrived[table]) >= max(first.arrived[table]) - timedelta(days=1)
    modes = lake.query(f"SELECT mode FROM {BUILDS} ORDER BY started_at", [BUILDS]).column(0).to_pylist()
    assert modes == ["downstream", "downstream"]

    # The same bronze built by the batch path, these models only: the same rows.
    batch = Lake(shutil.copytree(lake.uri, tmp_path / "batch"))
    for ref in WEB_SILVER:
        shutil.rmtree(batch.table_uri(ref))
    build(batch, WEB_SILVER)
    for ref in WEB_SILVER:
        assert rows_without(lake, ref, ("run_id",)) == rows_without(batch, ref, ("run_id",)), ref
