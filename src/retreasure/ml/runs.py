"""Every training run of a model, on the record: what it was asked (parameters), how well it did (metrics),
whether it went live, and where its artefact lies.

Runs are rows of ``ops.ml_runs`` (one Delta commit per run, so a crash leaves no half-run) and each run's
artefact is a folder ``<lake>/ops/ml_artefacts/<task>/<run id>/`` holding ``params.json``, ``metrics.json``,
the fitted model (``model.pkl``) and any tables the task keeps with it (``<name>.parquet``). A run is
``promoted`` when its serving tables were replaced, ``rejected`` when its evaluation was worse than its baseline
(the serving tables keep the last promoted run's output), ``failed`` when it raised. Any task (forecasting,
recommendations) records through ``record_run``.
"""

from __future__ import annotations

import json
import pickle
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from retreasure.lake.store import Lake, TableRef

ML_RUNS = TableRef("ops", "ml_runs")
Status = Literal["promoted", "rejected", "failed"]

RUNS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("task", pa.string()),
        ("model", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("params_json", pa.string()),
        ("metrics_json", pa.string()),
        ("artefact", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ]
)


def new_run_id(task: str) -> str:
    """A run's id: its task, its UTC start to the second, and a random suffix (two runs in one second differ)."""
    return f"{task}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


@dataclass
class Run:
    """One run being recorded: parameters set at the start, metrics as evaluation finds them."""

    task: str
    model: str
    params: dict[str, object]
    run_id: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.run_id = self.run_id or new_run_id(self.task)


def artefact_dir(lake: Lake, task: str, run_id: str) -> Path | None:
    """Where a run's artefact is kept: under the lake's ops folder when the lake is on local disk; None on a
    remote lake (the run's row is still written; its artefact would go to the team's model registry)."""
    if not lake.is_local:
        return None
    root = lake.uri.removeprefix("file://")
    return Path(root) / "ops" / "ml_artefacts" / task / run_id


def record_run(
    lake: Lake,
    run: Run,
    status: Status,
    reason: str = "",
    model_object: object = None,
    tables: Mapping[str, pa.Table] | None = None,
) -> str:
    """Write the run's artefact folder (when the lake is local: its parameters, metrics, model and any ``tables``
    as ``<name>.parquet``) and its row of ``ops.ml_runs``; the artefact's path, or "" when none was kept."""
    folder = artefact_dir(lake, run.task, run.run_id)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "params.json").write_text(json.dumps(run.params, indent=2, sort_keys=True, default=str))
        (folder / "metrics.json").write_text(json.dumps(run.metrics, indent=2, sort_keys=True))
        if model_object is not None:
            (folder / "model.pkl").write_bytes(pickle.dumps(model_object))
        for name, table in (tables or {}).items():
            pq.write_table(table, folder / f"{name}.parquet")
    row = {
        "run_id": run.run_id,
        "task": run.task,
        "model": run.model,
        "status": status,
        "reason": reason,
        "params_json": json.dumps(run.params, sort_keys=True, default=str),
        "metrics_json": json.dumps(run.metrics, sort_keys=True),
        "artefact": str(folder) if folder is not None else "",
        "started_at": run.started_at,
        "finished_at": datetime.now(UTC),
    }
    lake.append(ML_RUNS, pa.Table.from_pylist([row], schema=RUNS_SCHEMA))
    return row["artefact"]


def runs(lake: Lake, task: str) -> list[dict[str, object]]:
    """The task's runs, newest first."""
    if not lake.exists(ML_RUNS):
        return []
    table = lake.query(
        f"SELECT * FROM {ML_RUNS} WHERE task = $task ORDER BY started_at DESC", [ML_RUNS], {"task": task}
    )
    return table.to_pylist()
