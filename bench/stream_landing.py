"""Landing web events in bronze: the stream's columnar micro-batch landing beside the file path's per-record
BronzeWriter, on the same simulated clickstream messages, into fresh lakes. Baselines: parsing alone, and the
per-message work both share (parse, PII masking, hash); the rest is what each landing adds.

    .venv/bin/python -m bench.stream_landing --events 50000 --batch 5000
    .venv/bin/python -m bench.stream_landing --events 50000 --batch 5000 --stages   # CPU a message, by stage
    .venv/bin/python -m bench.stream_landing --events 50000 --batch 5000 --native   # the native pass beside texts
    RETREASURE_NATIVE=0 .venv/bin/python -m bench.stream_landing ... # the Python path alone
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import orjson
from cryptography.fernet import Fernet

from retreasure.bronze import native
from retreasure.bronze.batch import JsonBatchMasker
from retreasure.bronze.columns import batch_rows, bronze_columns
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
    parser.add_argument("--stages", action="store_true", help="CPU time a message of each stage of the landing")
    parser.add_argument("--native", action="store_true", help="the native pass against texts + hash, in pairs")
    args = parser.parse_args()
    lines = clickstream(args.events)
    vault_key = Fernet.generate_key().decode()
    if args.stages:
        stages(lines, vault_key, args.batch, args.repeat)
        return
    if args.native:
        native_pairs(lines, args.batch, args.repeat)
        return
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


def stages(lines: list[bytes], vault_key: str, batch: int, repeat: int) -> None:
    """CPU time a message (the thread's: what the landing costs whatever else the machine runs) of the stages of
    ``TopicLanding.land``, each run by itself over the same batches, and of the whole landing; the rest of the
    whole is what the stages leave out: offsets, dedup against the table, the vault's encryption, Delta commits."""
    entity = source_entity(TOPIC)[1]
    batches = [lines[start : start + batch] for start in range(0, len(lines), batch)]

    def decode(value: bytes) -> tuple[object, str | None]:
        return json_object(value + b"\n")

    def texts() -> None:
        masker = JsonBatchMasker(PiiMasker(HMAC_KEY, vault_key), entity, 1 << 20, 4 << 20)
        for values in batches:
            masker.batch(values)

    def columns() -> None:
        masker = PiiMasker(HMAC_KEY, vault_key)
        fast = JsonBatchMasker(masker, entity, 1 << 20, 4 << 20)
        for values in batches:
            done = fast.batch(values)
            started = time.thread_time()
            bronze_columns(entity, batch_rows(masker, entity, values, done, decode, 4 << 20))
            spent[0] += time.thread_time() - started

    spent = [0.0]
    figures = {
        "orjson.loads alone": _cpu(lambda: [orjson.loads(line) for line in lines], repeat),
        f"parse, mask, serialise, screen ({'native' if native.available() else 'batch.texts'})": _cpu(texts, repeat),
    }
    runs = []
    for _ in range(repeat):
        spent[0] = 0.0
        columns()
        runs.append(spent[0])
    figures["hash, keys, times, reasons (bronze_columns)"] = min(runs)
    with tempfile.TemporaryDirectory() as tmp:
        figures["whole landing (TopicLanding.land)"] = _cpu(
            lambda: columnar(lines, Lake(Path(tmp) / str(time.monotonic_ns())), PiiMasker(HMAC_KEY, vault_key), batch),
            repeat,
        )
    whole = figures["whole landing (TopicLanding.land)"]
    figures["rest: offsets, dedup, vault, commits"] = whole - sum(figures[name] for name in list(figures)[1:3])
    print(f"{len(lines):,} clickstream messages, batches of {batch:,}: CPU a message, fastest of {repeat}")
    for name, seconds in figures.items():
        print(f"  {name:<46} {seconds * 1e6 / len(lines):6.1f} us  {seconds / whole:6.1%}")


def native_pairs(lines: list[bytes], batch: int, pairs: int) -> None:
    """CPU a message of the native pass (``bronze.native``: parse, tokenise, compact text, screen, SHA-256, key and
    time) against what it replaces in Python (``JsonBatchMasker.texts`` and the SHA-256 of each text), over the
    same batches, in alternating pairs (a shared machine: the pairs' spread says how far to trust a figure)."""
    if not native.available():
        raise SystemExit("the native pass is not built (retreasure_native: make setup with cargo present)")
    entity = source_entity(TOPIC)[1]
    batches = [lines[start : start + batch] for start in range(0, len(lines), batch)]
    python = JsonBatchMasker(PiiMasker(HMAC_KEY), entity, 1 << 20, 4 << 20, use_native=False)
    fast = JsonBatchMasker(PiiMasker(HMAC_KEY), entity, 1 << 20, 4 << 20)
    sha256 = hashlib.sha256

    def in_python() -> None:
        for values in batches:
            done = python.texts(values)
            [sha256(result[1]).hexdigest() for result in done if result is not None]

    def in_rust() -> None:
        for values in batches:
            fast.batch(values)

    taken = sum(int(fast.batch(values).landed.sum()) for values in batches)  # type: ignore[union-attr]
    print(f"{len(lines):,} clickstream messages, batches of {batch:,}; native takes {taken:,} of them")
    for pair in range(pairs):
        figures = [_cpu(in_python, 1), _cpu(in_rust, 1)]
        load = os.getloadavg()[0]
        print(
            f"  pair {pair + 1}: texts + hash {figures[0] * 1e6 / len(lines):6.2f} us, native "
            f"{figures[1] * 1e6 / len(lines):6.2f} us a message (CPU; {figures[0] / figures[1]:4.1f}x), load {load:.1f}"
        )


def _cpu(step: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.thread_time()
        step()
        runs.append(time.thread_time() - started)
    return min(runs)


def _timed(step: Callable[[], None]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
