"""Building silver and gold at scale factor 1 (one simulated year): the engine against DuckDB alone, and an hourly
incremental build against the full one.

(a) the full build through the engine (row rules, checks, quarantine, Delta writes); (b) the same rendered SQL
of every model on one plain DuckDB connection, each materialised with CREATE TABLE AS in dependency order over
views of the same bronze datasets: the baseline; (c) the last hour of bronze landed, then an incremental build;
(d) the peak memory of each phase, each run in its own process. Faults are off. Results go to docs/benchmarks.md.

    make bench-pipeline          # or: .venv/bin/python -m bench.pipeline --lake /tmp/bench-lake (kept, reused)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa

from bench.ingest import bench_settings, write_section
from retreasure.bronze.ingest import run_ingest
from retreasure.engine.build import build, build_incremental
from retreasure.engine.models import load_models
from retreasure.lake import Lake, TableRef
from retreasure_sim.config import SimConfig
from retreasure_sim.stage import Credentials, running_servers
from retreasure_sim.stage import build as simulate

MARK = "<!-- bench/pipeline -->"
# When a bronze record changed; a file record has only its day, taken as that day's last second.
CHANGED = "coalesce(record_updated_at, CAST(partition_date + INTERVAL 1 DAY AS TIMESTAMPTZ) - INTERVAL 1 SECOND)"


def prepare(cache: Path, config: SimConfig) -> None:
    """Simulate, serve and ingest every source into ``cache``/lake, unless a previous run left it there."""
    if (cache / "lake" / "bronze").exists():
        print(f"reusing the ingested lake in {cache}", file=sys.stderr)
        return
    cache.mkdir(parents=True, exist_ok=True)
    settings = bench_settings(cache)
    started = time.perf_counter()
    truth = simulate(config, cache / "sim", cache / "landing")
    with running_servers(truth, config, Credentials.fresh(), settings) as (served, _):
        runs = run_ingest(served, Lake.from_settings(served))
    assert all(r.status == "success" for r in runs), [r.error for r in runs if r.error]
    seconds = time.perf_counter() - started
    print(f"simulated and ingested {sum(r.new_records for r in runs):,} records in {seconds:.0f}s", file=sys.stderr)


def hold_back_last_hour(cache: Path, work: Path) -> datetime:
    """Copy the cached bronze to ``work``, less its last hour (kept aside as Arrow files to land later)."""
    shutil.copytree(cache / "lake" / "bronze", work / "lake" / "bronze")
    lake = Lake(work / "lake")
    refs = lake.tables("bronze")
    last = max(lake.query(f"SELECT max({CHANGED}) AS t FROM {r}", [r]).column("t")[0].as_py() for r in refs)
    cutoff = last.replace(minute=0, second=0, microsecond=0)
    (work / "hour").mkdir()
    for ref in refs:
        later = lake.query(f"SELECT * FROM {ref} WHERE {CHANGED} >= $c", [ref], {"c": cutoff})
        if later.num_rows:
            with pa.ipc.new_file(work / "hour" / f"{ref.name}.arrow", later.schema) as sink:
                sink.write_table(later)
            before = lake.query(f"SELECT * FROM {ref} WHERE {CHANGED} < $c", [ref], {"c": cutoff})
            lake.overwrite(ref, before, partition_by=["partition_date"])
    return cutoff


def land_hour(work: Path) -> int:
    """Land the held-back hour the way an ingest run does: append what bronze does not hold yet."""
    lake, landed = Lake(work / "lake"), 0
    for path in sorted((work / "hour").glob("*.arrow")):
        with pa.memory_map(str(path)) as source:
            rows = pa.ipc.open_file(source).read_all()
        landed += lake.insert_new(TableRef("bronze", path.stem), rows, ["record_hash"], partition_by="partition_date")
    return landed


def duckdb_alone(lake: Lake) -> dict[str, float]:
    """The baseline: every model's rendered SQL as CREATE TABLE AS on one connection, in dependency order."""
    models = load_models()
    con = lake.connect(lake.tables("bronze"))
    for layer in sorted({ref.layer for ref in models}):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")
    seconds = {}
    for ref, model in models.items():
        started = time.perf_counter()
        con.execute(f"CREATE TABLE {ref} AS {model.render()}")
        seconds[str(ref)] = time.perf_counter() - started
    con.close()
    return seconds


def phase(name: str, work: Path, cache: Path, config: SimConfig) -> dict[str, object]:
    """One phase, timed, in this process (run alone in a child so that its peak memory is its own)."""
    lake = Lake(work / "lake")
    started = time.perf_counter()
    detail: dict[str, object] = {}
    if name == "prepare":
        prepare(cache, config)
        detail["cutoff"] = hold_back_last_hour(cache, work).isoformat()
    elif name == "full":
        timings: dict[str, float] = {}
        last = [time.perf_counter()]

        def lap(run: object) -> None:
            now = time.perf_counter()
            timings[str(getattr(run, "ref", "?"))] = now - last[0]
            last[0] = now

        detail["runs"] = len(build(lake, progress=lap))
        detail["models"] = timings
    elif name == "duckdb":
        detail["models"] = duckdb_alone(lake)
    elif name == "incremental":
        landed = land_hour(work)
        started = time.perf_counter()  # landing is the ingest's work, not the build's
        result = build_incremental(lake)
        detail |= {"landed": landed, "mode": result.mode, "runs": len(result.runs)}
        detail["partitioned runs"] = Counter(
            f"{r.start}..{r.end}" for r in result.runs if not r.whole and r.ref.layer == "silver"
        ).most_common(3)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"phase": name, "seconds": seconds, "peak_mb": peak_mb, **detail}


def run_phase(name: str, work: Path, args: argparse.Namespace, module: str = "bench.pipeline") -> dict[str, object]:
    """A phase in a child process (``module``'s), which starts small: its peak memory (getrusage) is the phase's
    own."""
    argv = ["--phase", name, "--work", str(work), "--lake", str(args.lake), "--scale", str(args.scale)]
    out = subprocess.run(
        [sys.executable, "-m", module, *argv, "--days", str(args.days)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def slowest(models: dict[str, float], n: int = 5) -> str:
    return ", ".join(f"{m} {s:.1f}s" for m, s in sorted(models.items(), key=lambda kv: -kv[1])[:n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--lake", type=Path, help="keep the ingested lake here and reuse it on later runs")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--phase", choices=["prepare", "full", "duckdb", "incremental"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = SimConfig(seed=7, start=date(2025, 1, 1), days=args.days, scale=args.scale)
    if args.phase:
        print(json.dumps(phase(args.phase, args.work, args.lake, config), default=str))
        return
    command = "make bench-pipeline" if args.lake is None else ".venv/bin/python -m bench.pipeline --lake DIR"
    with tempfile.TemporaryDirectory() as tmp:
        args.lake = args.lake or Path(tmp) / "cache"
        work = Path(tmp) / "work"
        cutoff = datetime.fromisoformat(str(run_phase("prepare", work, args)["cutoff"]))
        results = {}
        # The baseline writes DuckDB tables only: the engine's full build is in the lake the hour lands in.
        for name in ("full", "duckdb", "incremental"):
            results[name] = run_phase(name, work, args)
            print(f"{name:12} {results[name]['seconds']:7.1f} s   peak {results[name]['peak_mb']:,.0f} MB")
    full, alone, hourly = results["full"], results["duckdb"], results["incremental"]
    rows = [
        ("(a) full build, engine", f"{full['seconds']:.1f} s", f"{full['peak_mb']:,.0f} MB"),
        ("(b) same SQL, DuckDB alone", f"{alone['seconds']:.1f} s", f"{alone['peak_mb']:,.0f} MB"),
        ("(c) hourly incremental build", f"{hourly['seconds']:.1f} s", f"{hourly['peak_mb']:,.0f} MB"),
    ]
    lines = [
        MARK,
        f"### Pipeline, scale {args.scale:g} x {args.days} days ({datetime.now(UTC):%Y-%m-%d}, `{command}`)",
        "",
        "| phase | time | peak memory |",
        "|---|---:|---:|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
        f"- Engine / DuckDB alone (a)/(b): **{full['seconds'] / alone['seconds']:.2f}x**.",
        f"- Hourly / full (c)/(a): **{hourly['seconds'] / full['seconds']:.3f}x** "
        f"({hourly['landed']:,} bronze rows changed after {cutoff:%Y-%m-%d %H:%M} UTC; "
        f"{hourly['runs']} model runs, mode {hourly['mode']}).",
        f"- Slowest models in (a): {slowest(full['models'])}.",  # type: ignore[arg-type]
        f"- Slowest models in (b): {slowest(alone['models'])}.",  # type: ignore[arg-type]
        f"- Machine load (1, 5, 15 min) after the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        MARK,
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section(MARK, lines)


if __name__ == "__main__":
    main()
