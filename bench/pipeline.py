"""Building silver and gold at scale factor 1 (one simulated year): the engine against DuckDB alone, and an hourly
incremental build against the full one.

(a) the full build through the engine (row rules, checks, quarantine, Delta writes); (b) the same rendered SQL
of every model on one plain DuckDB connection, each materialised with CREATE TABLE AS in dependency order over
the same bronze files (DuckDB's own Parquet reader): the baseline; (c) the last hour of bronze landed, then an
incremental build; (d) the peak memory of each phase, each run in its own process. (a) and (b) run one after the
other three times (``--pairs``): they move together with the machine's load, so the verdicts are the medians of the
pairs' ratios. (c) runs three times (``--hours``), each on a copy of the lake the last full build left: its figure
is the median (one hour on two cores varied by a third from one run to the next).
Faults are off. Results go to docs/benchmarks.md.

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
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import pyarrow as pa

from bench.ingest import bench_settings, write_section
from retreasure.bronze.ingest import run_ingest
from retreasure.engine.build import build, build_incremental
from retreasure.engine.models import load_models
from retreasure.engine.runner import DUCKDB
from retreasure.lake import Lake, TableRef
from retreasure_sim.config import SimConfig
from retreasure_sim.stage import Credentials, running_servers
from retreasure_sim.stage import build as simulate

MARK = "<!-- bench/pipeline -->"
SIM_START = date(2025, 1, 1)
END_OF_TIME = datetime(9999, 1, 1, tzinfo=UTC)
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


def hold_back_last_hour(cache: Path, work: Path, until: datetime = END_OF_TIME) -> datetime:
    """Copy the cached bronze to ``work`` as it stood at ``until`` (what changed later left out), less its last
    hour (kept aside as Arrow files to land later): the lake of ``until``'s history, an hour behind."""
    shutil.copytree(cache / "lake" / "bronze", work / "lake" / "bronze")
    lake = Lake(work / "lake")
    refs = lake.tables("bronze")
    params = {"u": until}
    last = max(
        lake.query(f"SELECT max({CHANGED}) AS t FROM {r} WHERE {CHANGED} < $u", [r], params).column("t")[0].as_py()
        for r in refs
    )
    cutoff = last.replace(minute=0, second=0, microsecond=0)
    (work / "hour").mkdir()
    for ref in refs:
        window = {"c": cutoff, "u": until}
        later = lake.query(f"SELECT * FROM {ref} WHERE {CHANGED} >= $c AND {CHANGED} < $u", [ref], window)
        if later.num_rows:
            with pa.ipc.new_file(work / "hour" / f"{ref.name}.arrow", later.schema) as sink:
                sink.write_table(later)
        after = lake.query(f"SELECT count(*) AS n FROM {ref} WHERE {CHANGED} >= $c", [ref], {"c": cutoff})
        if after.column("n")[0].as_py():
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
    """The baseline: every model's rendered SQL as CREATE TABLE AS on one connection, in dependency order, bronze
    read by DuckDB's own Parquet reader (its fastest; the engine reads the tables it guards a predicate over as
    Arrow datasets, a cost it pays where DuckDB alone would fail on a malformed row; faults are off here)."""
    models = load_models()
    con = lake.connect(lake.tables("bronze"), native=True)
    for layer in sorted({ref.layer for ref in models}):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")
    seconds = {}
    for ref, model in models.items():
        started = time.perf_counter()
        con.execute(f"CREATE TABLE {ref} AS {model.render()}")
        seconds[str(ref)] = time.perf_counter() - started
    con.close()
    return seconds


def phase(name: str, work: Path, cache: Path, config: SimConfig, until: datetime) -> dict[str, object]:
    """One phase, timed, in this process (run alone in a child so that its peak memory is its own)."""
    lake = Lake(work / "lake")
    started = time.perf_counter()
    detail: dict[str, object] = {}
    if name == "prepare":
        prepare(cache, config)
    elif name == "hold":
        detail["cutoff"] = hold_back_last_hour(cache, work, until).isoformat()
    elif name == "full":
        runs = build(lake)
        detail["runs"] = len(runs)
        detail["models"] = {str(run.ref): run.seconds for run in runs}  # each run's own time (runs overlap)
        detail["workers"] = DUCKDB.workers
    elif name == "duckdb":
        detail["models"] = duckdb_alone(lake)
    elif name == "incremental":
        landed = land_hour(work)
        started, cpu = time.perf_counter(), time.process_time()  # landing is the ingest's work, not the build's
        result = build_incremental(lake)
        detail |= {"landed": landed, "mode": result.mode, "runs": len(result.runs)}
        # What the hour is made of: CPU over the cores, and each run's own time (runs overlap).
        detail["cpu"] = time.process_time() - cpu
        detail["run seconds"] = sum(r.seconds for r in result.runs)
        # What each changed dimension reached of its partitioned readers: days, or "all" (all of time)
        detail["dimension days"] = {
            f"{reader} <- {dimension}": "all" if days is None else len(days)
            for (reader, dimension), days in result.reached.items()
        }
        detail["partitioned runs"] = Counter(
            f"{r.start}..{r.end}" for r in result.runs if not r.whole and r.ref.layer == "silver"
        ).most_common(3)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"phase": name, "seconds": seconds, "peak_mb": peak_mb, **detail}


def run_phase(
    name: str, work: Path, args: argparse.Namespace, module: str = "bench.pipeline", years: int | None = None
) -> dict[str, object]:
    """A phase in a child process (``module``'s), which starts small: its peak memory (getrusage) is the phase's
    own. ``years``: the history the phase's lake holds (all the simulated days when None)."""
    argv = ["--phase", name, "--work", str(work), "--lake", str(args.lake), "--scale", str(args.scale)]
    argv += ["--days", str(args.days)] + (["--history", str(years)] if years else [])
    out = subprocess.run([sys.executable, "-m", module, *argv], check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_run(runs: list[dict[str, object]]) -> dict[str, object]:
    """The run of median time (the later of the middle two for an even count)."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]  # type: ignore[arg-type, return-value]


def slowest(models: dict[str, float], n: int = 5) -> str:
    return ", ".join(f"{m} {s:.1f}s" for m, s in sorted(models.items(), key=lambda kv: -kv[1])[:n])


def history_end(years: int) -> datetime:
    """Where a lake of ``years`` simulated years ends: that many years of 365 days after the simulation's start."""
    return datetime.combine(SIM_START + timedelta(days=365 * years), dtime(), UTC)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--years",
        type=int,
        nargs="+",
        default=[1],
        help="simulated years of history to build at (the first is the full build's DuckDB comparison)",
    )
    parser.add_argument("--days", type=int, help="days simulated (default: 365 per year of the largest --years)")
    parser.add_argument("--lake", type=Path, help="keep the ingested lake here and reuse it on later runs")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="(a) then (b), one after the other, this many times at the first history: the verdict is the median",
    )
    parser.add_argument(
        "--hours",
        type=int,
        default=3,
        help="the hour landed and built this many times, each on a copy of the full build's lake: the median counts",
    )
    phases = ["prepare", "hold", "full", "duckdb", "incremental"]
    parser.add_argument("--phase", choices=phases, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--history", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.days = args.days or 365 * max(args.years)
    config = SimConfig(seed=7, start=SIM_START, days=args.days, scale=args.scale)
    if args.phase:
        until = history_end(args.history) if args.history else END_OF_TIME
        print(json.dumps(phase(args.phase, args.work, args.lake, config, until), default=str))
        return
    command = "make bench-pipeline" if args.lake is None else ".venv/bin/python -m bench.pipeline --lake DIR"
    command += f" --years {' '.join(map(str, args.years))}"
    with tempfile.TemporaryDirectory() as tmp:
        args.lake = args.lake or Path(tmp) / "cache"
        run_phase("prepare", Path(tmp) / "unused", args)
        results: dict[int, dict[str, dict[str, object]]] = {}
        for years in args.years:
            work = Path(tmp) / f"work{years}"
            results[years] = {"hold": run_phase("hold", work, args, years=years)}
            shutil.copytree(work / "lake", work / "held")  # bronze only: each full build starts from it
            # (a) and (b) side by side, as many times as asked: the two move together with the machine's load.
            # The baseline writes DuckDB tables only: the last full build is the lake the hour lands in.
            pairs = args.pairs if years == args.years[0] else 1
            for _ in range(pairs):
                shutil.rmtree(work / "lake")
                shutil.copytree(work / "held", work / "lake")
                for name in ("full", "duckdb") if years == args.years[0] else ("full",):
                    figures = run_phase(name, work, args, years=years)
                    results[years].setdefault(f"{name} runs", []).append(figures)  # type: ignore[union-attr]
                    print(f"{years}y {name:12} {figures['seconds']:7.1f} s   peak {figures['peak_mb']:,.0f} MB")
            for name in ("full", "duckdb"):
                runs = results[years].get(f"{name} runs")
                if runs:
                    results[years][name] = median_run(runs)  # type: ignore[arg-type]
            shutil.copytree(work / "lake", work / "built")  # each hour lands in the lake the full build left
            for hour in range(args.hours):
                if hour:
                    shutil.rmtree(work / "lake")
                    shutil.copytree(work / "built", work / "lake")
                figures = run_phase("incremental", work, args, years=years)
                results[years].setdefault("incremental runs", []).append(figures)  # type: ignore[union-attr]
                print(f"{years}y {'incremental':12} {figures['seconds']:7.1f} s   peak {figures['peak_mb']:,.0f} MB")
            results[years]["incremental"] = median_run(results[years]["incremental runs"])  # type: ignore[arg-type]
            shutil.rmtree(work)
    lines = [MARK, *report(args, command, results), MARK]
    print("\n".join(lines))
    if not args.no_write:
        write_section(MARK, lines)


def report(args: argparse.Namespace, command: str, results: dict[int, dict[str, dict[str, object]]]) -> list[str]:
    """The run as markdown: figures, ratios and the issue's targets side by side."""
    first = args.years[0]
    full, alone, hourly = (results[first][p] for p in ("full", "duckdb", "incremental"))
    pairs = list(zip(results[first]["full runs"], results[first]["duckdb runs"], strict=True))  # type: ignore
    ratios = sorted(a["seconds"] / b["seconds"] for a, b in pairs)
    peaks = sorted(a["peak_mb"] / b["peak_mb"] for a, b in pairs)
    speed, memory = ratios[len(ratios) // 2], peaks[len(peaks) // 2]  # the medians of the pairs
    share = hourly["seconds"] / full["seconds"]  # type: ignore[operator]
    lines = [
        f"### Pipeline, scale {args.scale:g}, {args.days} days simulated ({datetime.now(UTC):%Y-%m-%d}, `{command}`)",
        "",
        f"| phase ({first} year{'s' if first > 1 else ''} of history) | time | peak memory |",
        "|---|---:|---:|",
        f"| (a) full build, engine, {full['workers']} models at once (median of {len(pairs)}) "
        f"| {full['seconds']:.1f} s | {full['peak_mb']:,.0f} MB |",
        f"| (b) same SQL, DuckDB alone (median of {len(pairs)}) | {alone['seconds']:.1f} s "
        f"| {alone['peak_mb']:,.0f} MB |",
        f"| (c) hourly incremental build (median of {len(results[first]['incremental runs'])}) "
        f"| {hourly['seconds']:.1f} s | {hourly['peak_mb']:,.0f} MB |",
        "",
        "| target | measured | verdict |",
        "|---|---:|---|",
        f"| (a)/(b) time <= 1.30x (median of the pairs) | {speed:.2f}x | {verdict(speed <= 1.3)} |",
        f"| (a) peak memory <= (b) + 10% (median of the pairs) | {memory:.2f}x | {verdict(memory <= 1.1)} |",
        f"| (c)/(a) <= 0.05 | {share:.3f} | {verdict(share <= 0.05)} |",
        "",
        "| years of history | (a) full build | (c) hourly build | (c)/(a) | bronze rows in the hour | model runs "
        "| (c) CPU | a run's own time, mean |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for years, phases in results.items():
        f, h = phases["full"], phases["incremental"]
        per_run = h["run seconds"] / max(h["runs"], 1)  # type: ignore[operator]
        lines.append(
            f"| {years} | {f['seconds']:.1f} s | {h['seconds']:.1f} s | {h['seconds'] / f['seconds']:.3f} | "  # type: ignore[operator]
            f"{h['landed']:,} | {h['runs']} | {h['cpu']:.1f} s | {per_run * 1000:.0f} ms |"
        )
        print(f"{years}y hourly: dimensions reached {h.get('dimension days')}", file=sys.stderr)
    if len(results) > 1:
        hours = [phases["incremental"]["seconds"] for phases in results.values()]
        growth = max(hours) / min(hours)  # type: ignore[type-var, operator]
        lines += [
            "",
            f"- Hourly build across {', '.join(map(str, results))} years: max/min **{growth:.2f}x** "
            f"(target: flat, following the hour's rows, not the history).",
        ]
    lines += [
        "- (c) each run, in the order run: "
        + "; ".join(
            f"{y}y " + ", ".join(f"{r['seconds']:.1f} s" for r in phases["incremental runs"])  # type: ignore[union-attr]
            for y, phases in results.items()
        )
        + ".",
        "- (a) / (b) pair by pair, in the order run: "
        + ", ".join(f"{a['seconds']:.1f} / {b['seconds']:.1f} s" for a, b in pairs)
        + "; peak memory "
        + ", ".join(f"{a['peak_mb']:,.0f} / {b['peak_mb']:,.0f} MB" for a, b in pairs)
        + ".",
        "- Cutoffs (the hour landed starts at): "
        + ", ".join(f"{y}y {phases['hold']['cutoff']}" for y, phases in results.items())
        + ".",
        f"- Slowest models in (a): {slowest(full['models'])}.",  # type: ignore[arg-type]
        f"- Slowest models in (b): {slowest(alone['models'])}.",  # type: ignore[arg-type]
        f"- Machine load (1, 5, 15 min) after the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
    ]
    return lines


if __name__ == "__main__":
    main()
