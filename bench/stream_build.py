"""The stream's micro-build at scale factor 1: what a day (and an hour) of web events costs to bring from bronze into
silver and gold, on a lake of the whole business built in full before.

The business is simulated, served and ingested (faults off; ``bench.pipeline.prepare``); the last simulated day of
the two streamed bronze tables is held back, the lake is built in full, then the day's rows land in 24 hourly
appends (as the stream's micro-batches add files) and one micro-build takes them in; then one more hour-sized
micro-build (the day's last hour held back again) and one with nothing new.

    .venv/bin/python -m bench.stream_build --days 60 --lake /tmp/bench-stream-lake     # kept, reused
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench.pipeline import prepare
from retreasure.engine.build import build_models
from retreasure.lake import Lake, TableRef
from retreasure.streaming.microbuild import MicroBuild, MicroBuilds
from retreasure_sim.config import SimConfig

STREAMED = (TableRef("bronze", "web_clickstream"), TableRef("bronze", "web_transactions"))


def hold_back(lake: Lake, day: date) -> dict[TableRef, list]:
    """Take the streamed tables' rows of ``day`` and after out of bronze; returned hour by hour, to land later."""
    held: dict[TableRef, list] = {}
    for ref in STREAMED:
        rows = lake.query(f"SELECT * FROM {ref} WHERE partition_date >= $d", [ref], {"d": day})
        kept = lake.query(f"SELECT * FROM {ref} WHERE partition_date < $d", [ref], {"d": day})
        lake.overwrite(ref, kept, partition_by=["partition_date"])
        hours = rows.column("record_updated_at").to_pylist()
        held[ref] = [rows.filter([h is not None and h.hour == hour for h in hours]) for hour in range(24)]
    return held


def land(lake: Lake, held: dict[TableRef, list], hours: range) -> int:
    landed = 0
    for hour in hours:
        for ref, parts in held.items():
            if parts[hour].num_rows:
                landed += lake.insert_new(ref, parts[hour], ["record_hash"], partition_by="partition_date")
    return landed


def show(label: str, done: MicroBuild) -> None:
    print(
        f"{label}: {done.seconds:.2f} s, {done.status}, {done.bronze_rows:,} bronze rows, "
        f"{done.model_runs} model runs, {done.rows_written:,} rows written"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--lake", type=Path, help="a folder to keep the ingested lake in, reused when present")
    args = parser.parse_args()
    config = SimConfig(seed=7, start=date(2025, 1, 1), days=args.days, scale=1.0)
    cache = args.lake or Path(tempfile.mkdtemp(prefix="bench-stream-build-"))
    prepare(cache, config)
    work = Path(tempfile.mkdtemp(prefix="bench-stream-build-work-"))
    try:
        shutil.copytree(cache / "lake", work / "lake")
        lake = Lake(work / "lake")
        last_day = config.start + timedelta(days=config.days - 1)
        held = hold_back(lake, last_day)
        started = time.perf_counter()
        assert not build_models(lake).blocked
        print(f"full build of the lake without its last web day: {time.perf_counter() - started:.1f} s")
        builds = MicroBuilds(lake, STREAMED, every_s=60)
        land(lake, held, range(23))
        show("micro-build, a day of web events (23 h)", builds.build_now())
        land(lake, held, range(23, 24))
        show("micro-build, the last hour", builds.build_now())
        show("micro-build, nothing new", builds.build_now())
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
