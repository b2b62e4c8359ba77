"""Machine learning at scale factor 1 (one simulated year): each task's training and scoring time and its peak
memory, each task in a process of its own so that one's memory does not hide in another's. Results go to
docs/benchmarks.md.

Tasks (one function each in ``TASKS``, each given a lake holding the year's gold input it reads):

- ``forecast``: the demand forecast (retreasure.ml.forecast): weekly features from the daily sales, the rolling-
  origin backtest of AutoETS against seasonal-naive (training), then the fit on all weeks and the 13-week
  forecast with intervals (scoring).

The year's daily sales are the simulator's (``retreasure_sim.demand.sold_by_day``), as gold.mart_sales_daily
gives them; ``--lake`` points at a built lake instead (bench/pipeline.py's, say).

    make bench-ml        # or: .venv/bin/python -m bench.ml [--task forecast] [--lake PATH] [--scale 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from bench.ingest import write_section
from retreasure.lake import Lake

MARK = "<!-- bench/ml -->"


def timed(step: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = step()
    return result, time.perf_counter() - started


def bench_forecast(lake: Lake) -> dict[str, object]:
    """Seconds to import the library, build the features, backtest (training) and fit and forecast (scoring)."""
    from retreasure.ml import forecast as fc

    _, imported = timed(lambda: __import__("statsforecast.models"))
    features, featured = timed(lambda: fc.weekly_series(lake))
    frame = fc.long_frame(features)  # type: ignore[arg-type]
    params = fc.ForecastParams()
    (_, metrics), trained = timed(lambda: fc.backtest(frame, params, "bench", params.model))  # type: ignore[misc]
    _, scored = timed(lambda: fc.score(frame, params, "bench", params.model))
    return {
        "series": int(frame.unique_id.nunique()),
        "weeks": int(frame.groupby("unique_id").size().min()),
        "import_s": round(imported, 2),
        "features_s": round(featured, 2),
        "train_backtest_s": round(trained, 2),
        "score_s": round(scored, 2),
        "model_mase": round(metrics["model_mase"], 3),
        "baseline_mase": round(metrics["baseline_mase"], 3),
    }


# The recommendations task adds its entry here, with a function of the same shape.
TASKS: dict[str, Callable[[Lake], dict[str, object]]] = {"forecast": bench_forecast}


def year_lake(root: Path, scale: float) -> Lake:
    """A lake with the simulated year's daily sales in gold."""
    from retreasure.ml.forecast import SALES
    from retreasure_sim.business import simulate
    from retreasure_sim.config import SimConfig
    from retreasure_sim.demand import sold_by_day

    lake = Lake(root / "lake")
    if not lake.exists(SALES):
        truth = simulate(SimConfig(seed=7, start=date(2025, 1, 6), days=364, scale=scale))
        lake.overwrite(SALES, sold_by_day(truth), partition_by=["day"])
    return lake


def child(task: str, lake_uri: str) -> None:
    """Run one task and print its figures and this process's peak memory as JSON."""
    figures = TASKS[task](Lake(lake_uri))
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), action="append", help="Run these tasks (default: all).")
    parser.add_argument("--lake", help="A lake with the gold inputs (default: a simulated year, made here).")
    parser.add_argument("--scale", type=float, default=1.0, help="Scale of the simulated year.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.lake)
        return
    with tempfile.TemporaryDirectory(prefix="bench-ml-") as scratch:
        lake = Lake(args.lake) if args.lake else year_lake(Path(scratch), args.scale)
        results = {}
        for task in args.task or sorted(TASKS):
            command = [sys.executable, "-m", "bench.ml", "--child", task, "--lake", lake.uri]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[task] = json.loads(out.strip().splitlines()[-1])
            print(task, results[task])
    lines = [MARK, "", f"Scale {args.scale:g}, one simulated year; each task in its own process.", ""]
    for task, figures in results.items():
        lines += [f"- `{task}`: " + ", ".join(f"{k} {v}" for k, v in figures.items())]
    write_section(MARK, [*lines, "", MARK])


if __name__ == "__main__":
    main()
