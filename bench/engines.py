"""The same models on both engines, side by side: the full build and the hourly incremental build on DuckDB in
process and on a local Spark session with Delta, over the same ingested lake (a simulated year at scale 1 by
default), with the peak memory of each.

Each phase runs in its own child process, so its peak is its own: for Spark, the Python driver's plus the JVM's
(the JVM's high-water mark is read from /proc before the session stops). The Spark figures count the session's
start apart from the build: a fixed cost a cluster pays once, not per build. Faults are off. Results go to
docs/benchmarks.md ("Engines").

    make bench-engines           # or: .venv/bin/python -m bench.engines --scale 0.2 --days 60 --lake /tmp/bench-lake
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from bench.ingest import write_section
from bench.pipeline import hold_back_last_hour, land_hour, prepare
from bench.pipeline import run_phase as pipeline_phase
from retreasure.engine.build import build_incremental, build_models
from retreasure.engine.engines import model_engine
from retreasure.engine.runner import ModelEngine
from retreasure.lake import Lake
from retreasure_sim.config import SimConfig

MARK = "<!-- bench/engines -->"
PHASES = ("prepare", "duckdb-full", "duckdb-hourly", "spark-full", "spark-hourly")


def _peak_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    """Every process below ``pid`` (Spark's JVM is started by a launcher script under the driver)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found += [int(entry.name), *_children(int(entry.name))]
    return found


def phase(name: str, work: Path, cache: Path, config: SimConfig) -> dict[str, object]:
    """One phase, timed, in this process."""
    detail: dict[str, object] = {}
    if name == "prepare":
        prepare(cache, config)
        for engine in ("duckdb", "spark"):
            detail[f"cutoff {engine}"] = hold_back_last_hour(cache, work / engine).isoformat()
        return {"phase": name, **detail}
    engine_name, mode = name.split("-")
    lake = Lake(work / engine_name / "lake")
    engine: ModelEngine = model_engine(engine_name)
    if engine_name == "spark":
        started = time.perf_counter()
        engine.session  # type: ignore[attr-defined]  # noqa: B018 - started apart: the fixed cost
        detail["session_s"] = time.perf_counter() - started
    if mode == "hourly":
        detail["landed"] = land_hour(work / engine_name)
    started = time.perf_counter()
    result = build_models(lake, engine=engine) if mode == "full" else build_incremental(lake, engine=engine)
    seconds = time.perf_counter() - started
    detail |= {"runs": len(result.runs), "mode": result.mode, "blocked": result.blocked}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    jvm = sum(_peak_mb(pid) for pid in _children(os.getpid()))
    if engine_name == "spark":
        engine.stop()  # type: ignore[attr-defined]
    return {"phase": name, "seconds": seconds, "peak_mb": peak + jvm, "jvm_mb": jvm, **detail}


def run_phase(name: str, work: Path, args: argparse.Namespace) -> dict[str, object]:
    return pipeline_phase(name, work, args, module="bench.engines")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--lake", type=Path, help="keep the ingested lake here and reuse it on later runs")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = SimConfig(seed=7, start=date(2025, 1, 1), days=args.days, scale=args.scale)
    if args.phase:
        print(json.dumps(phase(args.phase, args.work, args.lake, config), default=str))
        return
    command = "make bench-engines" if args.lake is None else f".venv/bin/python -m bench.engines --scale {args.scale:g}"
    with tempfile.TemporaryDirectory() as tmp:
        args.lake = args.lake or Path(tmp) / "cache"
        work = Path(tmp) / "work"
        run_phase("prepare", work, args)
        results = {}
        for name in PHASES[1:]:
            results[name] = run_phase(name, work, args)
            print(f"{name:14} {results[name]['seconds']:8.1f} s   peak {results[name]['peak_mb']:,.0f} MB", flush=True)
        shutil.rmtree(work, ignore_errors=True)
    lines = [MARK, *table(results, args, command), MARK]
    print("\n".join(lines))
    if not args.no_write:
        write_section(MARK, lines)


def table(results: dict[str, dict[str, object]], args: argparse.Namespace, command: str) -> list[str]:
    def figure(name: str, key: str) -> float:
        return float(results[name][key])  # type: ignore[arg-type]

    rows = []
    for mode, label in (("full", "full build"), ("hourly", "hourly incremental build")):
        duck, spark = f"duckdb-{mode}", f"spark-{mode}"
        rows.append(
            f"| {label} | {figure(duck, 'seconds'):.1f} s | {figure(spark, 'seconds'):.1f} s | "
            f"**{figure(spark, 'seconds') / figure(duck, 'seconds'):.1f}x** | {figure(duck, 'peak_mb'):,.0f} MB | "
            f"{figure(spark, 'peak_mb'):,.0f} MB (JVM {figure(spark, 'jvm_mb'):,.0f}) |"
        )
    return [
        f"### Engines, scale {args.scale:g} x {args.days} days ({datetime.now(UTC):%Y-%m-%d}, `{command}`)",
        "",
        "| build | DuckDB | Spark (local[2]) | Spark / DuckDB | DuckDB peak | Spark peak |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"- Spark session start (not in the build times): {figure('spark-full', 'session_s'):.1f} s (full), "
        f"{figure('spark-hourly', 'session_s'):.1f} s (hourly).",
        f"- Model runs: full {results['duckdb-full']['runs']} on both; hourly "
        f"{results['duckdb-hourly']['runs']} (DuckDB), {results['spark-hourly']['runs']} (Spark); "
        f"{results['spark-hourly']['landed']:,} bronze rows landed in the hour.",
        f"- Machine load (1, 5, 15 min) after the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
    ]


if __name__ == "__main__":
    main()
