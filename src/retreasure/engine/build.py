"""Building many models in dependency order, outside any orchestrator: for the demo, tests and benchmarks.

A model whose blocking check failed stops everything downstream of it; warnings do not.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import date

from retreasure.engine.models import ALL_TIME, Model, downstream, load_models
from retreasure.engine.runner import ModelRun, run_model
from retreasure.lake.store import Lake, TableRef


def build(
    lake: Lake,
    select: Iterable[TableRef] | None = None,
    start: date = ALL_TIME[0],
    end: date = ALL_TIME[1],
    models: dict[TableRef, Model] | None = None,
    progress: Callable[[ModelRun], None] | None = None,
) -> list[ModelRun]:
    """Run the selected models (all by default) for [start, end]; returns the runs, in order."""
    models = models if models is not None else load_models()
    chosen = set(select) if select is not None else set(models)
    run_id = uuid.uuid4().hex[:12]
    blocked: set[TableRef] = set()
    runs = []
    for ref, model in models.items():
        if ref not in chosen or ref in blocked:
            continue
        run = run_model(lake, model, start, end, run_id)
        runs.append(run)
        if progress:
            progress(run)
        if run.blocked:
            blocked |= downstream(models, {ref})
    return runs
