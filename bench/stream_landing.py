"""Landing web events in bronze: the stream's columnar micro-batch landing beside the file path's per-record
BronzeWriter, on the same simulated clickstream messages, into fresh lakes. Baselines: parsing alone, and the
per-message work both share (parse, PII masking, hash); the rest is what each landing adds.

    .venv/bin/python -m bench.stream_landing --events 50000 --batch 5000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from cryptography.fernet import Fernet

from retreasure.bronze.landing import BronzeWriter
from retreasure.bronze.pii import PiiMasker
from retreasure.bronze.record import masked_raw
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
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the fastest counts (a shared machine)")
    args = parser.parse_args()
    lines = clickstream(args.events)
    vault_key = Fernet.generate_key().decode()
    entity = source_entity(TOPIC)[1]

    def parse_only() -> None:
        for line in lines:
            json_object(line)

    def shared() -> None:
        masker = PiiMasker(HMAC_KEY, vault_key)
        for line in lines:
            raw, _ = masked_raw(masker, entity, json_object(line)[0], 4 << 20)
            hashlib.sha256(raw.encode()).hexdigest()

    def into_lake(land: Callable[[list[bytes], Lake, PiiMasker, int], float]) -> Callable[[], None]:
        def run() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                land(lines, Lake(Path(tmp)), PiiMasker(HMAC_KEY, vault_key), args.batch)

        return run

    steps = {
        "parse only (baseline)": parse_only,
        "parse+mask+hash (shared)": shared,
        "BronzeWriter, per record": into_lake(per_record),
        "stream landing, columnar": into_lake(columnar),
    }
    results = {name: min(_timed(step) for _ in range(args.repeat)) for name, step in steps.items()}
    parse, masked = results["parse only (baseline)"], results["parse+mask+hash (shared)"]
    print(f"{len(lines):,} clickstream messages, batches of {args.batch:,}, fastest of {args.repeat}")
    for name, seconds in results.items():
        added = (seconds - masked) * 1e6 / len(lines)
        beyond = f"{added:6.1f} us/row beyond the shared work" if name.startswith(("Bronze", "stream")) else ""
        rate = len(lines) / seconds
        print(f"  {name:<26} {seconds:6.2f} s {rate:>9,.0f} rows/s {seconds / parse:5.1f}x parse  {beyond}")


def _timed(step: Callable[[], None]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
