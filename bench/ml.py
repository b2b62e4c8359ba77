"""Machine learning at scale factor 1 (one simulated year): training and scoring time and peak memory of the
demand forecast and of the recommendations, each beside its baseline measured in the same run, each task in a
process of its own so that one's memory does not hide in another's. Results go to docs/benchmarks.md.

One lake serves both tasks: the simulated year served, ingested and built (``bench.pipeline.prepare``, then the
build), made once in ``--cache`` and reused. Nothing is published: the phases are timed on the library calls.

- ``forecast`` (retreasure.ml.forecast): weekly features from gold's daily sales; training is the rolling-origin
  backtest (AutoETS and seasonal-naive together, as a run does it), scoring the fit on all weeks and the 13-week
  forecast with intervals. Baseline: the same two phases with seasonal-naive alone.
- ``recommendations`` (retreasure.ml.recommend): reading the interactions from gold and silver, the time-split
  evaluation (both methods), training on all history, scoring every customer's top 10 and every listing's
  similar items. Baseline: popularity (its table is the whole of its training; its top 10 for every customer).

    make bench-ml        # or: .venv/bin/python -m bench.ml [--task forecast] [--cache PATH] [--scale 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

from bench.ingest import write_section
from retreasure.lake import Lake

MARK = "<!-- bench/ml -->"
T = TypeVar("T")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(step: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = step()
    return result, time.perf_counter() - started


def bench_forecast(lake: Lake) -> dict[str, object]:
    """The forecast's phases against seasonal-naive alone."""
    phases: list[list[object]] = []
    _, imported = timed(lambda: __import__("statsforecast.models"))
    phases.append(["import statsforecast (pandas, scipy)", imported, None, peak_mb()])
    from statsforecast import StatsForecast
    from statsforecast.models import SeasonalNaive

    from retreasure.ml import forecast as fc

    features, featured = timed(lambda: fc.weekly_series(lake))
    phases.append(["features", featured, None, peak_mb()])
    frame = fc.long_frame(features)
    params = fc.ForecastParams()
    weeks = int(frame.groupby("unique_id").size().min())
    _, baseline_season = fc._seasons(params, weeks)
    naive = StatsForecast(models=[SeasonalNaive(season_length=baseline_season)], freq="W-MON", n_jobs=1)
    (_, metrics), trained = timed(lambda: fc.backtest(frame, params, "bench", params.model))
    _, naive_trained = timed(
        lambda: naive.cross_validation(df=frame, h=params.horizon, n_windows=params.windows, step_size=params.step)
    )
    phases.append(["train (backtest, 4 cutoffs)", trained, naive_trained, peak_mb()])
    _, scored = timed(lambda: fc.score(frame, params, "bench", params.model))
    _, naive_scored = timed(lambda: naive.fit(df=frame).predict(h=params.horizon, level=list(fc.LEVELS)))
    phases.append(["score (fit all weeks, 13-week forecast)", scored, naive_scored, peak_mb()])
    return {
        "phases": phases,
        "about": f"{frame.unique_id.nunique()} weekly series of {weeks} weeks",
        "quality": f"MASE {metrics['model_mase']:.3f} vs seasonal-naive {metrics['baseline_mase']:.3f}",
    }


def bench_recommendations(lake: Lake) -> dict[str, object]:
    """The recommender's phases against popularity."""
    from retreasure.ml import reco_data, reco_eval, reco_run, recommend
    from retreasure.ml.recommend import Candidates, RecoParams

    params = RecoParams()
    phases: list[list[object]] = []
    data, read = timed(lambda: reco_data.load(lake))
    phases.append(["read interactions", read, None, peak_mb()])
    until = max(e.at for e in data.interactions)
    cutoff = until - timedelta(days=reco_run.HOLDOUT_DAYS)
    scores, evaluated = timed(lambda: reco_eval.evaluate(data, cutoff, until, params))
    phases.append(["evaluate (time split, both methods)", evaluated, None, peak_mb()])
    after = until + timedelta(microseconds=1)
    model, trained = timed(lambda: recommend.train(data, after, params))
    skus = {str(item["sku"]) for item in data.items}
    _, popular_trained = timed(
        lambda: recommend.item_popularity(recommend.interaction_strength(data, skus, after, params))
    )
    phases.append(["train (all history)", trained, popular_trained, peak_mb()])
    candidates = Candidates(model, data.for_sale(None))
    bought = recommend.purchased(data.interactions)
    customers = sorted(data.customers)
    _, scored = timed(lambda: [recommend.recommend(model, c, candidates, 10, bought.get(c, ())) for c in customers])
    _, popular_scored = timed(lambda: [recommend.popular(model, candidates, 10, bought.get(c, ())) for c in customers])
    phases.append(["score every customer (top 10)", scored, popular_scored, peak_mb()])
    _, similar = timed(lambda: recommend.similar(model, candidates, params.similar_n))
    phases.append(["similar items for every listing", similar, None, peak_mb()])
    by = {(s.method, s.group): s for s in scores}
    hybrid, popular = by.get(("hybrid", "warm")), by.get(("popularity", "warm"))
    quality = (
        f"warm recall@10 {hybrid.recall_at_10:.4f} vs popularity {popular.recall_at_10:.4f}, NDCG@10 "
        f"{hybrid.ndcg_at_10:.4f} vs {popular.ndcg_at_10:.4f} ({hybrid.customers} returning customers)"
        if hybrid and popular
        else "no returning customer to judge on"
    )
    return {
        "phases": phases,
        "about": f"{len(data.items):,} online items ({len(candidates.skus):,} for sale), {len(customers):,} customers, "
        f"{len(data.interactions):,} interactions",
        "quality": quality,
    }


TASKS: dict[str, Callable[[Lake], dict[str, object]]] = {
    "forecast": bench_forecast,
    "recommendations": bench_recommendations,
}


def built_lake(cache: Path, days: int, scale: float) -> Lake:
    """The simulated year, ingested and built, in ``cache`` (made once, then reused)."""
    from bench.pipeline import prepare
    from retreasure.engine.build import build
    from retreasure.lake import TableRef
    from retreasure_sim.config import SimConfig

    prepare(cache, SimConfig(seed=7, start=date(2025, 1, 1), days=days, scale=scale))
    lake = Lake(cache / "lake")
    if not lake.exists(TableRef("gold", "mart_sales_daily")):
        _, seconds = timed(lambda: build(lake))
        print(f"built the lake in {seconds:.0f}s", file=sys.stderr)
    return lake


def child(task: str, lake_uri: str) -> None:
    """Run one task in this process and print its figures as JSON."""
    print(json.dumps(TASKS[task](Lake(lake_uri))))


def table(results: dict[str, dict[str, object]]) -> list[str]:
    lines = [
        "| task | phase | seconds | baseline seconds | x baseline | peak memory (MB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for task, figures in results.items():
        for phase, seconds, baseline, peak in figures["phases"]:  # type: ignore[attr-defined]
            ratio = f"{seconds / baseline:.1f}" if baseline else "-"
            shown = f"{baseline:.2f}" if baseline is not None else "-"
            lines.append(f"| {task} | {phase} | {seconds:.2f} | {shown} | {ratio} | {peak:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), action="append", help="Run these tasks (default: all).")
    parser.add_argument("--cache", type=Path, default=Path("bench/results/ml"), help="Where the built lake is kept.")
    parser.add_argument("--days", type=int, default=365, help="Days of the simulated business.")
    parser.add_argument("--scale", type=float, default=1.0, help="Scale of the simulated business.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.lake)
        return
    lake = built_lake(args.cache, args.days, args.scale)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"] * 3
    results: dict[str, dict[str, object]] = {}
    for task in args.task or list(TASKS):
        command = [sys.executable, "-m", "bench.ml", "--child", task, "--lake", lake.uri]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[task] = json.loads(out.strip().splitlines()[-1])
    lines = [
        MARK,
        "",
        f"{args.days} days at scale {args.scale:g}, each task in its own process; load average before "
        f"the run {' '.join(load)}.",
        "",
        *table(results),
        "",
        *(f"- `{task}`: {figures['about']}; {figures['quality']}." for task, figures in results.items()),
        "",
        MARK,
    ]
    print("\n".join(lines))
    write_section(MARK, lines)


if __name__ == "__main__":
    main()
