"""Recommendations at scale: how long reading the features, the time-split evaluation, training, and scoring every
customer and listing take, and the process's peak memory after each, over a built lake of the simulated business.

The lake is made once (simulated, served, ingested and built, faults off) and reused; the run itself is read-only
(nothing is published). Results go to docs/benchmarks.md between the ``bench/ml_reco`` marks.

    .venv/bin/python -m bench.ml_reco --lake /tmp/bench-ml-lake            # scale 1, one year
    .venv/bin/python -m bench.ml_reco --lake /tmp/bench-ml-small --days 120 --scale 0.2
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

from bench.ingest import write_section
from bench.pipeline import prepare
from retreasure.engine.build import build
from retreasure.lake import Lake, TableRef
from retreasure.ml import reco_data, reco_eval, reco_run, recommend
from retreasure.ml.recommend import Candidates, RecoParams
from retreasure_sim.config import SimConfig

MARK = "<!-- bench/ml_reco -->"
T = TypeVar("T")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(phases: list[tuple[str, float, float]], name: str, work: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = work()
    phases.append((name, time.perf_counter() - started, peak_mb()))
    print(f"{name}: {phases[-1][1]:.1f}s, peak {phases[-1][2]:.0f} MB", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, required=True, help="folder of the lake, made there once and reused")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--write", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    config = SimConfig(seed=7, start=date(2025, 1, 1), days=args.days, scale=args.scale)
    prepare(args.lake, config)
    lake = Lake(args.lake / "lake")
    if not lake.exists(TableRef("gold", "dim_product")):
        build(lake)
    params = RecoParams()
    phases: list[tuple[str, float, float]] = []
    data = timed(phases, "read features", lambda: reco_data.load(lake))
    until = max(e.at for e in data.interactions)
    cutoff = until - timedelta(days=reco_run.HOLDOUT_DAYS)
    scores = timed(
        phases, "evaluate (train before cutoff, score holdout)", lambda: reco_eval.evaluate(data, cutoff, until, params)
    )
    model = timed(
        phases, "train (all history)", lambda: recommend.train(data, until + timedelta(microseconds=1), params)
    )
    candidates = Candidates(model, data.for_sale(None))
    bought = recommend.purchased(data.interactions)
    timed(
        phases,
        "score every customer (top 10)",
        lambda: [recommend.recommend(model, c, candidates, 10, bought.get(c, ())) for c in sorted(data.customers)],
    )
    timed(phases, "similar items for every listing", lambda: recommend.similar(model, candidates, 10))
    lines = [
        MARK,
        "### Recommendations (bench/ml_reco.py)",
        "",
        f"{args.days} days at scale {args.scale}: {len(data.items):,} online items "
        f"({len(candidates.skus):,} for sale), "
        f"{len(data.customers):,} customers, {len(data.interactions):,} interactions.",
        "",
        "| phase | seconds | peak memory (MB) |",
        "|---|---:|---:|",
        *(f"| {name} | {seconds:.1f} | {peak:.0f} |" for name, seconds, peak in phases),
        "",
        "| method | customers | recall@10 | NDCG@10 | coverage |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {s.method} ({s.group}) | {s.customers} | {s.recall_at_10:.4f} | {s.ndcg_at_10:.4f} | {s.coverage:.3f} |"
            for s in scores
        ),
        MARK,
    ]
    print("\n".join(lines))
    if args.write:
        write_section(MARK, lines)


if __name__ == "__main__":
    main()
