"""The demand forecast as readers ask for it: one category on one channel (or in one store), the weeks of
history before it and the promoted forecast's weeks with their intervals; and what can be asked for."""

from __future__ import annotations

from typing import Any

from retreasure.lake.store import Lake, TableRef
from retreasure.serving import read

FORECAST = TableRef("gold", "ml_demand_forecast")
FEATURES = TableRef("gold", "ml_demand_features")
RUNS = TableRef("ops", "ml_runs")
HISTORY_WEEKS = 26

_WHERE = "category = $category AND channel = $channel AND store_id IS NOT DISTINCT FROM $store"


def choices(lake: Lake) -> list[dict[str, Any]]:
    """The series the promoted forecast holds: (scope, category, channel, store_id)."""
    return read.rows(
        lake, f"SELECT DISTINCT scope, category, channel, store_id FROM {FORECAST} ORDER BY ALL", [FORECAST]
    )


def demand(lake: Lake, category: str, channel: str, store: str | None = None) -> dict[str, Any]:
    """The forecast of ``category`` on ``channel`` (in ``store`` when given): its run, its weeks with units and
    net sales and their 80% and 95% intervals, and the last ``HISTORY_WEEKS`` whole weeks that were sold."""
    params = {"category": category, "channel": channel, "store": store}
    weeks = read.rows(
        lake,
        f"SELECT * EXCLUDE (run_id, model, scope, category, channel, store_id, trained_through, created_at) "
        f"FROM {FORECAST} WHERE {_WHERE} ORDER BY week",
        [FORECAST],
        params,
    )
    run = read.rows(
        lake,
        f"SELECT DISTINCT run_id, model, trained_through, created_at FROM {FORECAST} WHERE {_WHERE}",
        [FORECAST],
        params,
    )
    history = read.rows(
        lake,
        f"SELECT week, units, revenue FROM {FEATURES} WHERE {_WHERE} ORDER BY week DESC LIMIT {HISTORY_WEEKS}",
        [FEATURES],
        params,
    )
    return {
        "category": category,
        "channel": channel,
        "store_id": store,
        "run": run[0] if run else None,
        "history": sorted(history, key=lambda r: r["week"]),
        "forecast": weeks,
    }


def sourcing(lake: Lake) -> list[dict[str, Any]]:
    plan = TableRef("gold", "ml_sourcing_plan")
    return read.rows(lake, f"SELECT * FROM {plan} ORDER BY category", [plan])


def latest_promoted(lake: Lake) -> dict[str, Any] | None:
    """The run behind the served forecast, with its backtest figures (metrics as JSON text)."""
    found = read.rows(
        lake,
        f"SELECT run_id, model, status, reason, metrics_json, finished_at FROM {RUNS} "
        "WHERE task = 'demand_forecast' AND status = 'promoted' ORDER BY finished_at DESC LIMIT 1",
        [RUNS],
    )
    return found[0] if found else None
