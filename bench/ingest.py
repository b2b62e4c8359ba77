"""Ingest throughput per source at scale factor 1 (one simulated year), against a same-run baseline.

For each source: the connector alone (pages fetched or files parsed, records thrown away) is the baseline;
the full ingest (masking, hashing, Delta commits, ingest log) is measured against it. Also HTTP requests per
1,000 records. Faults are off: this is the steady state. Results go to docs/benchmarks.md.

    make bench-ingest            # or: .venv/bin/python -m bench.ingest --scale 1 --days 365
    .venv/bin/python -m bench.ingest --part targets   # issue 13's targets only (bench/ingest_targets.py)
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from cryptography.fernet import Fernet

from bench.ingest_targets import MARK as TARGETS_MARK
from bench.ingest_targets import run_targets
from retreasure.bronze.ingest import run_ingest
from retreasure.connectors.base import FileSource, Window, load_sources
from retreasure.lake import Lake
from retreasure.records.instants import parse_instant
from retreasure.settings import Settings
from retreasure_sim.config import SimConfig
from retreasure_sim.stage import Credentials, build, running_servers

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
MARK = "<!-- bench/ingest -->"


def extract_only(settings: Settings, name: str) -> tuple[int, int, float]:
    """Records and requests the connector yields with nothing landed: the baseline."""
    source = load_sources()[name](settings)
    records = 0
    started = time.perf_counter()
    window = Window(parse_instant(settings.ingest.start), datetime.now(UTC))
    for entity in source.entities:
        if isinstance(source, FileSource):
            for path in source.files(entity):
                records += sum(1 for _ in source.read(entity, path))
        else:
            records += sum(1 for _ in source.extract(entity, window))
    source.close()
    return records, source.stats.requests, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument(
        "--part", choices=("targets", "sources", "all"), default="all", help="issue 13's targets, per source, or both"
    )
    parser.add_argument("--web-days", type=int, default=120, help="days of web files for the targets")
    args = parser.parse_args()
    if args.part in ("targets", "all"):
        with tempfile.TemporaryDirectory() as tmp:
            section = run_targets(Path(tmp), args.web_days, args.scale, "bench-key", Fernet.generate_key().decode())
        print("\n".join(section))
        if not args.no_write:
            write_section(TARGETS_MARK, section)
    if args.part == "targets":
        return
    config = SimConfig(seed=7, start=date(2025, 1, 1), days=args.days, scale=args.scale)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = bench_settings(root)
        started = time.perf_counter()
        truth = build(config, root / "sim", root / "landing")
        print(
            f"simulated {len(truth['orders']):,} orders, {len(truth['web_events']):,} events "
            f"in {time.perf_counter() - started:.1f}s"
        )
        rows = []
        with running_servers(truth, config, Credentials.fresh(), settings) as (served, _):
            lake = Lake.from_settings(served)
            for name in load_sources():
                records, requests, base_s = extract_only(served, name)
                started = time.perf_counter()
                runs = run_ingest(served, lake, [name])
                full_s = time.perf_counter() - started
                landed = sum(r.records for r in runs)
                assert landed == records, f"{name}: ingest saw {landed} records, the connector alone {records}"
                rows.append((name, records, requests, base_s, full_s))
                print(
                    f"{name:8} {records:>9,} records {records / full_s:>10,.0f}/s  "
                    f"x{full_s / base_s:.2f} of extract-only  {1000 * requests / max(records, 1):.1f} req/1k"
                )
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = [
        MARK,
        f"### Ingest, scale {args.scale:g} x {args.days} days ({date.today()}, `make bench-ingest`)",
        "",
        "| source | records | records/s (full ingest) | full / extract-only | HTTP requests per 1,000 records |",
        "|---|---:|---:|---:|---:|",
    ]
    table += [f"| {n} | {r:,} | {r / f:,.0f} | {f / b:.2f} | {1000 * q / max(r, 1):.1f} |" for n, r, q, b, f in rows]
    total_r, total_f = sum(r[1] for r in rows), sum(r[4] for r in rows)
    table += [
        "",
        f"All sources: {total_r:,} records in {total_f:.1f} s ({total_r / total_f:,.0f}/s); "
        f"peak memory of the whole run {peak_mb:,.0f} MB.",
        MARK,
    ]
    print("\n".join(table))
    if not args.no_write:
        write_section(MARK, table)


def bench_settings(root: Path) -> Settings:
    """Settings on a lake and landing folder under ``root``, with throwaway PII keys."""
    return Settings(
        _env_file=None,
        lake_uri=str(root / "lake"),
        landing_dir=root / "landing",  # type: ignore[call-arg]
        pii_hmac_key="bench-key",
        pii_vault_key=Fernet.generate_key().decode(),
    )


def write_section(mark: str, lines: list[str]) -> None:
    """Put ``lines`` (which start and end with ``mark``) in docs/benchmarks.md, replacing the previous ones."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nMeasured on the project's 2-core machine.\n"
    if mark in text:
        head, _, rest = text.partition(mark)
        text = head + "\n".join(lines) + rest.partition(mark)[2]
    else:
        text = text.rstrip() + "\n\n" + "\n".join(lines) + "\n"
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)


if __name__ == "__main__":
    main()
