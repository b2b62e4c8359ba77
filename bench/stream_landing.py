"""Landing web events in bronze: the stream's columnar micro-batch landing beside the file path's per-record
BronzeWriter, on the same simulated clickstream messages, into fresh lakes; parsing alone is the baseline.

    .venv/bin/python -m bench.stream_landing --events 50000 --batch 5000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path

from cryptography.fernet import Fernet

from retreasure.bronze.landing import BronzeWriter
from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import RawRecord
from retreasure.connectors.files import json_object
from retreasure.lake import Lake
from retreasure.streaming.landing import Message, TopicLanding, source_entity
from retreasure_sim.business import simulate
from retreasure_sim.config import SimConfig
from retreasure_sim.files.web import Clickstream

TOPIC = "web.clickstream"
HMAC_KEY = "bench-hmac-key-0123456789abcdef"


def clickstream(events: int) -> list[bytes]:
    """At least ``events`` simulated clickstream messages as the collector serialises them (the first
    ``events``)."""
    days = 14
    while True:
        truth = simulate(SimConfig(seed=7, start=date(2025, 1, 1), days=days, scale=1.0))
        if len(truth["web_events"]) >= events or days > 365:
            break
        days *= 2
    stream = Clickstream(truth)
    return [
        json.dumps(stream.message(event, stream.sessions[event.session_id])).encode()
        for event in list(truth["web_events"])[:events]
    ]


def per_record(lines: list[bytes], lake: Lake, masker: PiiMasker, batch: int) -> float:
    source, entity = source_entity(TOPIC)
    writer = BronzeWriter(lake, masker, source, entity, batch_id="bench")
    started = time.perf_counter()
    for n, line in enumerate(lines, 1):
        payload, error = json_object(line)
        writer.add(RawRecord(payload, "web/clickstream/bench.jsonl", error=error))
        if n % batch == 0:
            writer.flush()
    writer.flush()
    return time.perf_counter() - started


def columnar(lines: list[bytes], lake: Lake, masker: PiiMasker, batch: int) -> float:
    landing = TopicLanding(lake, masker, TOPIC)
    messages = [Message(TOPIC, 0, offset, line, 1735689600000) for offset, line in enumerate(lines)]
    started = time.perf_counter()
    for start in range(0, len(messages), batch):
        landing.land(messages[start : start + batch], f"bench-{start}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000, help="messages per micro-batch (and per flush)")
    args = parser.parse_args()
    lines = clickstream(args.events)
    vault_key = Fernet.generate_key().decode()
    started = time.perf_counter()
    for line in lines:
        json_object(line)
    parse = time.perf_counter() - started
    results = {"parse only (baseline)": parse}
    for name, land in (("BronzeWriter, per record", per_record), ("stream landing, columnar", columnar)):
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = land(lines, Lake(Path(tmp)), PiiMasker(HMAC_KEY, vault_key), args.batch)
    print(f"{len(lines):,} clickstream messages, batches of {args.batch:,}")
    for name, seconds in results.items():
        print(f"  {name:<28} {seconds:7.2f} s  {len(lines) / seconds:>10,.0f} rows/s  {seconds / parse:5.1f}x parse")


if __name__ == "__main__":
    main()
