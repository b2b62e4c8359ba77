"""What the live web shop puts on the wire: every clickstream event and payment transaction as a Kafka message,
in the order the site sends them, with the seeded faults of a real wire; and the truth of what a consumer must
end up with.

A message's value is the very record the day's JSON Lines file holds (``files/web.py`` builds both), its key the
session (clickstream) or the order (transactions), so that one visit's or one order's events stay in order on one
partition, and its ``event_time`` header the event's own time. The site sends each event as it happens; the
faults move, copy, break, stuff or reshape messages:

- duplicate: the same message produced again 0.5-30 s later, byte for byte (the site retrying a lost ack);
- out_of_order: sent 1 s to 5 min late, after events that happened later;
- late: sent 1-6 h late;
- malformed: an extra copy, cut short or no longer JSON, beside the good message: quarantined, the event lands;
- oversized: a clickstream message stuffed with a page snapshot beyond the platform's record limit, as the
  event's only message: quarantined, the event never lands;
- schema_drift: a field added, renamed or sent as another JSON type: lands like any good message.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from retreasure_sim.config import StreamFaults
from retreasure_sim.files.drop import spoil_json, utc_text
from retreasure_sim.files.web import (
    CLICKSTREAM_EXTRA,
    TRANSACTIONS_EXTRA,
    clickstream_messages,
    json_text,
    transaction_messages,
)
from retreasure_sim.model import Truth

EVENT_TIME_HEADER = "event_time"
# Above the platform's default limits on one record (ingest.max_line_bytes 1 MiB, max_record_bytes 4 MiB).
DEFAULT_OVERSIZED_BYTES = 5 << 20
# What stuffs an oversized message: a tag that captured the page's markup.
SNAPSHOT_MARKUP = "<div><span></span></div>"
# Faults that put a broken message on the wire: the platform must quarantine exactly these.
QUARANTINED = ("malformed", "oversized")


@dataclass(frozen=True)
class WireTopics:
    """The topics the site publishes to (the platform's streaming settings name the same)."""

    clickstream: str = "web.clickstream"
    transactions: str = "web.transactions"

    def __iter__(self) -> Iterator[str]:
        return iter((self.clickstream, self.transactions))


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One message the site produces: where it goes, its bytes, and which faults shaped it."""

    seq: int  # its place in the stream: messages are produced in this order
    topic: str
    key: bytes
    value: bytes
    event_time: datetime  # when the event happened
    sent_at: datetime  # when the site sends it, on the simulated clock
    record_key: str  # the event's identity, as bronze keys it: messageId, transaction_id
    faults: tuple[tuple[str, str], ...] = ()  # (kind, detail) of each fault this message carries

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        return [(EVENT_TIME_HEADER, utc_text(self.event_time).encode())]


@dataclass(frozen=True, slots=True)
class WireFault:
    """A fault put on the wire on purpose, with the message it is in, so tests can look for it downstream."""

    seq: int
    topic: str
    key: str
    record_key: str
    kind: str
    detail: str


@dataclass
class WireTally:
    """What a stream carried, topic by topic: messages, distinct events, the events a consumer must land as good
    records, and every fault. Fed message by message, by the producer as it sends or by ``wire_truth``."""

    messages: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    events: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    landed: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    faults: list[WireFault] = field(default_factory=list)

    def add(self, message: WireMessage) -> None:
        topic = message.topic
        self.messages[topic] += 1
        self.bytes[topic] += len(message.value)
        kinds = {kind for kind, _ in message.faults}
        if "malformed" not in kinds:
            self.events[topic].add(message.record_key)
        if not kinds & set(QUARANTINED):
            self.landed[topic].add(message.record_key)
        key = message.key.decode()
        self.faults += [WireFault(message.seq, topic, key, message.record_key, k, d) for k, d in message.faults]

    def count(self, kind: str, topic: str | None = None) -> int:
        return sum(f.kind == kind and topic in (None, f.topic) for f in self.faults)

    def quarantined(self, topic: str | None = None) -> list[WireFault]:
        """The messages the platform must quarantine, each once: broken copies and stuffed messages."""
        return [f for f in self.faults if f.kind in QUARANTINED and topic in (None, f.topic)]


def wire_messages(
    truth: Truth,
    faults: StreamFaults,
    seed: int,
    oversized_bytes: int = DEFAULT_OVERSIZED_BYTES,
    topics: WireTopics = WireTopics(),
) -> Iterator[WireMessage]:
    """Every web event and payment transaction of the truth as the site sends them, in sending order (the
    event time, moved by the delay faults), faults included; the same on every run for the same seed."""
    wire = _Wire(faults, seed, oversized_bytes)
    queue: list[tuple[datetime, int, Draft]] = []
    order = itertools.count()
    payments = transaction_messages(truth)
    next_payment = next(payments, None)
    seq = itertools.count()

    def release(until: datetime | None) -> Iterator[WireMessage]:
        """Send everything due before ``until``: nothing produced later can be due earlier."""
        nonlocal next_payment
        while next_payment is not None and (until is None or next_payment[0].at < until):
            payment, record = next_payment
            for draft in wire.drafts(topics.transactions, record["order_id"], record, payment.at):
                heapq.heappush(queue, (draft[4], next(order), draft))
            next_payment = next(payments, None)
        while queue and (until is None or queue[0][0] < until):
            yield WireMessage(next(seq), *heapq.heappop(queue)[2])

    # A day's sessions come after the previous day's, and none has an event before its own day: once a day's
    # first session comes, everything due before that day's midnight can go.
    day = None
    for event, session, message in clickstream_messages(truth):
        if session.started_at.date() != day:
            day = session.started_at.date()
            yield from release(datetime.combine(day, time(), UTC))
        for draft in wire.drafts(topics.clickstream, session.session_id, message, event.at):
            heapq.heappush(queue, (draft[4], next(order), draft))
    yield from release(None)


def wire_truth(
    truth: Truth,
    faults: StreamFaults,
    seed: int,
    oversized_bytes: int = DEFAULT_OVERSIZED_BYTES,
    topics: WireTopics = WireTopics(),
) -> WireTally:
    """What a consumer of the whole stream must end up with: per topic, the distinct events, the events that
    land as good records (all but the oversized), and the exact faults, the quarantined messages among them."""
    tally = WireTally()
    for message in wire_messages(truth, faults, seed, oversized_bytes, topics):
        tally.add(message)
    return tally


# A message before its place in the stream is known: WireMessage's fields after ``seq``.
Draft = tuple[str, bytes, bytes, datetime, datetime, str, tuple[tuple[str, str], ...]]
FAULT_KINDS = ("oversized", "late", "out_of_order", "schema_drift", "malformed", "duplicate")


class _Wire:
    """Decides, per event, the messages the site sends for it and the faults on them (seeded per event)."""

    def __init__(self, faults: StreamFaults, seed: int, oversized_bytes: int) -> None:
        self.rates = {kind: getattr(faults, "duplicates" if kind == "duplicate" else kind) for kind in FAULT_KINDS}
        self.seed = seed
        self.oversized_bytes = oversized_bytes

    def _struck(self, record_key: str) -> set[str]:
        """The fault kinds that strike this event: one seeded coin per kind, the same on every run."""
        digest = hashlib.blake2b(f"{self.seed}|wire|{record_key}".encode(), digest_size=8 * len(self.rates)).digest()
        coins = (int.from_bytes(digest[8 * n : 8 * n + 8], "big") / 2**64 for n in range(len(self.rates)))
        return {kind for (kind, rate), coin in zip(self.rates.items(), coins, strict=True) if coin < rate}

    def drafts(self, topic: str, key: str, record: dict[str, Any], at: datetime) -> list[Draft]:
        clickstream = "messageId" in record
        record_key = record["messageId"] if clickstream else record["transaction_id"]
        struck = self._struck(record_key)
        wire_key = key.encode()
        if not struck:
            return [(topic, wire_key, json_text(record).encode(), at, at, record_key, ())]
        rng = random.Random(f"{self.seed}|wire|{record_key}")

        def draft(value: str, sent_at: datetime, *faults: tuple[str, str]) -> Draft:
            return (topic, wire_key, value.encode(), at, sent_at, record_key, faults)

        if clickstream and "oversized" in struck:
            value = _stuffed(record, self.oversized_bytes)
            return [draft(value, at, ("oversized", f"{len(value):,} bytes: a page snapshot in the properties"))]
        faults: list[tuple[str, str]] = []
        sent_at = at
        if "late" in struck:
            sent_at = at + timedelta(hours=rng.uniform(1, 6))
            faults.append(("late", f"sent {(sent_at - at).total_seconds() / 3600:.1f} h after the event"))
        elif "out_of_order" in struck:
            sent_at = at + timedelta(seconds=rng.uniform(1, 300))
            faults.append(("out_of_order", f"sent {(sent_at - at).total_seconds():.0f} s after the event"))
        if "schema_drift" in struck:
            record, change = _drifted(record, rng)
            faults.append(("schema_drift", change))
        value = json_text(record)
        sent = [draft(value, sent_at, *faults)]
        if "malformed" in struck:
            broken = spoil_message(value, rng)
            sent.append(draft(broken, sent_at + timedelta(seconds=rng.uniform(0, 2)), ("malformed", broken[:80])))
        if "duplicate" in struck:
            again = sent_at + timedelta(seconds=rng.uniform(0.5, 30))
            retry = f"produced again {(again - sent_at).total_seconds():.1f} s later"
            sent.append(draft(value, again, ("duplicate", retry)))
        return sent


def spoil_message(text: str, rng: random.Random) -> str:
    """A broken copy of a message: cut in the middle (a collector that died mid-write), or as a file's broken
    record is (``spoil_json``: single-quoted keys, the closing brace lost)."""
    return text[: len(text) // 2] if rng.random() < 1 / 3 else spoil_json(text, rng)


def _stuffed(record: dict[str, Any], size: int) -> str:
    """The message with a page snapshot in its properties that brings it to exactly ``size`` bytes."""
    properties = {**record.get("properties", {}), "page_snapshot": ""}
    bare = json_text({**record, "properties": properties})
    missing = max(0, size - len(bare.encode()))
    snapshot = (SNAPSHOT_MARKUP * (missing // len(SNAPSHOT_MARKUP) + 1))[:missing]
    return json_text({**record, "properties": {**properties, "page_snapshot": snapshot}})


def _number(text: str) -> int | float:
    return int(text) if text.lstrip("-").isdigit() else float(text)


def _renamed_user_agent(record: dict[str, Any]) -> dict[str, Any]:
    context = {("user_agent" if name == "userAgent" else name): value for name, value in record["context"].items()}
    return {**record, "context": context}


Drift = tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]
CLICKSTREAM_DRIFTS: tuple[Drift, ...] = (
    (f"added field {next(iter(CLICKSTREAM_EXTRA))}", lambda r: {**r, **CLICKSTREAM_EXTRA}),
    ("renamed context.userAgent to context.user_agent", _renamed_user_agent),
)
PRICE_AS_NUMBER: Drift = (
    "properties.price sent as a JSON number",
    lambda r: {**r, "properties": {**r["properties"], "price": _number(r["properties"]["price"])}},
)
TRANSACTIONS_DRIFTS: tuple[Drift, ...] = (
    (f"added field {next(iter(TRANSACTIONS_EXTRA))}", lambda r: {**r, **TRANSACTIONS_EXTRA}),
    ("amount sent as a JSON number", lambda r: {**r, "amount": _number(r["amount"])}),
)


def _drifted(record: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], str]:
    """The record as a newer collector or gateway release sends it, and what changed."""
    if "messageId" not in record:
        drifts = TRANSACTIONS_DRIFTS
    else:
        drifts = CLICKSTREAM_DRIFTS + ((PRICE_AS_NUMBER,) if "price" in record.get("properties", {}) else ())
    change, drift = rng.choice(drifts)
    return drift(record), change
