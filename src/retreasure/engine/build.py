"""Building many models in dependency order, outside any orchestrator: full builds, and the hourly incremental
build that recomputes only what new bronze data touched.

A model whose blocking check failed stops everything downstream of it; warnings do not.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial

import pyarrow as pa

from retreasure.engine.changes import (
    Arrivals,
    BuildRecord,
    Days,
    arrivals,
    downstream_watermark,
    last_success,
    record_build,
    versions,
    watermark,
)
from retreasure.engine.models import ALL_TIME, Model, downstream, load_models, relationship_targets
from retreasure.engine.reach import Rebuilt, changed_days, rows_of, watched_columns
from retreasure.engine.runner import DUCKDB, ModelEngine, ModelRun, month_end, run_model
from retreasure.engine.schedule import Step, run_in_dependency_order
from retreasure.lake.lock import build_lock
from retreasure.lake.store import Lake, TableRef
from retreasure.log import get_logger
from retreasure.quality.checks import CheckResult, record_results

log = get_logger("engine")
# A model whose inputs hold more (compressed, on disk) runs alone: the year's web events, not the marts that read them.
ALONE_BYTES = 64 << 20
JOIN_DAYS = 7  # changed days closer than this (beyond the lookback) are rebuilt in one window


@dataclass
class Build:
    """One build: its id, whether it ran in full or incrementally, and its model runs in order; for an
    incremental build, what each bronze table it considered gained since the watermark."""

    run_id: str
    mode: str
    runs: list[ModelRun] = field(default_factory=list)
    arrivals: dict[TableRef, Arrivals | None] = field(default_factory=dict)
    # (reader, input with a reach rule): the days of the partitioned reader that the input's changed rows fed (of a
    # partitioned input, with the partitions it wrote)
    reached: dict[tuple[TableRef, TableRef], Days] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return any(r.blocked for r in self.runs)


def build(
    lake: Lake,
    select: Iterable[TableRef] | None = None,
    start: date = ALL_TIME[0],
    end: date = ALL_TIME[1],
    models: dict[TableRef, Model] | None = None,
    progress: Callable[[ModelRun], None] | None = None,
    run_id: str | None = None,
    engine: ModelEngine = DUCKDB,
) -> list[ModelRun]:
    """Run the selected models (all by default) for [start, end]; returns the runs, in order. Every build is
    recorded in ops.builds; one of every model over all of time (``full``) is where the next incremental build
    starts, one of some models or some days (``partial``) is not."""
    models = models if models is not None else load_models()
    return _build(lake, models, select, start, end, progress, run_id, engine).runs


def build_models(
    lake: Lake,
    models: dict[TableRef, Model] | None = None,
    progress: Callable[[ModelRun], None] | None = None,
    run_id: str | None = None,
    engine: ModelEngine = DUCKDB,
) -> Build:
    """Every model over all of time, recorded in ops.builds: `retreasure build`."""
    models = models if models is not None else load_models()
    return _build(lake, models, progress=progress, run_id=run_id, engine=engine)


def _build(
    lake: Lake,
    models: dict[TableRef, Model],
    select: Iterable[TableRef] | None = None,
    start: date = ALL_TIME[0],
    end: date = ALL_TIME[1],
    progress: Callable[[ModelRun], None] | None = None,
    run_id: str | None = None,
    engine: ModelEngine = DUCKDB,
) -> Build:
    whole = select is None and (start, end) == ALL_TIME
    with build_lock(lake, "full" if whole else "partial"):  # one build at a time on a lake (lake/lock.py)
        return _build_locked(lake, models, select, start, end, progress, run_id, engine)


def _build_locked(
    lake: Lake,
    models: dict[TableRef, Model],
    select: Iterable[TableRef] | None,
    start: date,
    end: date,
    progress: Callable[[ModelRun], None] | None,
    run_id: str | None,
    engine: ModelEngine,
) -> Build:
    began, read = datetime.now(UTC), versions(lake, bronze_inputs(models))
    chosen = set(select) if select is not None else set(models)
    whole = select is None and (start, end) == ALL_TIME
    result = Build(run_id or new_build_id(), "full" if whole else "partial")
    blocked: set[TableRef] = set()

    def plan(model: Model) -> Step[ModelRun] | None:
        if model.ref not in chosen or model.ref in blocked:
            return None
        # Some days of a merge are the days its versions landed, not days of its rows (a listing created before
        # the first day asked and never changed since is in none of them): it is rebuilt whole, as before merging.
        s, e = ALL_TIME if model.contract.write_mode == "merge" else (start, end)
        run = partial(run_model, lake, model, s, e, result.run_id, dq=dq, engine=engine)
        return Step(run, (s, e) == ALL_TIME and _alone(lake, model))

    def finish(model: Model, run: ModelRun) -> None:
        result.runs.append(run)
        if progress:
            progress(run)
        if run.blocked:
            blocked.update(downstream(models, {model.ref}))

    with _recorded(lake, result, began, read), _dq_log(lake) as dq:
        run_in_dependency_order(models, plan, finish, engine.workers)
    _in_model_order(result, models)
    return result


def build_incremental(
    lake: Lake,
    models: dict[TableRef, Model] | None = None,
    progress: Callable[[ModelRun], None] | None = None,
    run_id: str | None = None,
    only_from: Iterable[TableRef] | None = None,
    engine: ModelEngine = DUCKDB,
) -> Build:
    """Rebuild what bronze changed since the last successful build: each silver model that reads a changed
    bronze table runs for the days (partitions) that changed, plus its lookback; the partitions each run wrote
    become the days of the models that read it, and so on downstream. Unpartitioned models (small dimensions
    and marts) whose inputs changed are rebuilt whole. With no successful build yet, this is a full build.

    ``only_from`` (bronze tables) restricts the build to what those tables feed (mode ``downstream``: the
    stream's micro-builds): only their changes are looked for, and only their versions are recorded, so the
    watermark of every other table stays where it was for the next build to find its changes."""
    with build_lock(lake, "incremental" if only_from is None else "downstream"):  # see lake/lock.py
        return _incremental(lake, models if models is not None else load_models(), progress, run_id, only_from, engine)


def _incremental(
    lake: Lake,
    models: dict[TableRef, Model],
    progress: Callable[[ModelRun], None] | None,
    run_id: str | None,
    only_from: Iterable[TableRef] | None,
    engine: ModelEngine,
) -> Build:
    began, bronze = datetime.now(UTC), bronze_inputs(models)
    if only_from is not None:
        wanted_tables = set(only_from)
        bronze = [ref for ref in bronze if ref in wanted_tables]
    since, read = watermark(lake), versions(lake, bronze)
    # A lake that holds only some sources (a new one that the stream fills first) cannot be built in full: a
    # micro-build there builds what the streamed tables feed, the models whose other inputs are missing aside.
    partial_lake = only_from is not None and since is None and not _every_source_landed(lake, models)
    if since is None and not partial_lake:
        log.info("no earlier build: building in full")
        return _build(lake, models, progress=progress, run_id=run_id, engine=engine)
    if since is None:
        since = downstream_watermark(lake)
        log.info("not every source landed yet: building what the streamed tables feed", extra={"tables": bronze})
    result = Build(run_id or new_build_id(), "incremental" if only_from is None else "downstream")
    days: dict[TableRef, Days] = {}
    present = [ref for ref in bronze if str(ref) in read]
    for ref, gained in zip(present, _arrivals(lake, present, since, read, engine.workers), strict=True):
        result.arrivals[ref] = gained
        changed = None if gained is None else frozenset(gained.rows)
        if changed is None or changed:
            days[ref] = changed
    blocked: set[TableRef] = set()
    rebuilt: dict[TableRef, Rebuilt] = {}  # the unpartitioned models this build ran, their rows before and after
    before: dict[TableRef, pa.Table | None] = {}  # an unpartitioned model's rows as its readers were built from them
    wanted_of: dict[TableRef, Days] = {}  # the days each model was planned for (None: all of time)
    watched = {ref: watched_columns(models, ref) for ref in models}  # the columns of each that its readers read
    settled = last_success(lake)

    def plan(model: Model) -> Step[list[ModelRun]] | None:
        """What ``model`` runs for (its windows), decided once what it reads has been built; None: nothing."""
        ref = model.ref
        if ref in blocked:
            return None
        touched = [_reach(lake, models, model, i, days, rebuilt, result) for i in model.inputs if i in days]
        if not touched:
            return None
        missing = _missing_inputs(lake, model, {r.ref for r in result.runs}) if partial_lake else []
        if missing:
            log.info("model skipped: inputs not built", extra={"model": str(ref), "missing": missing})
            blocked.update(downstream(models, {ref}))
            return None
        wanted: Days = None if any(t is None for t in touched) else frozenset().union(*touched)
        if model.contract.partitioned and wanted is not None and not wanted:
            return None  # only unpartitioned inputs ran, and no row this model reads changed
        by_window = _by_window(model, [i for i in model.inputs if i in days])
        if wanted is not None and by_window and lacks_contract_columns(lake, model):
            wanted = None  # its contract gained a column since it was built: every partition is rebuilt
        contract = model.contract
        period = contract.partition_period
        spans = spans_of(wanted, contract.lookback_days, period) if by_window and wanted else [ALL_TIME]
        # Read now: its run replaces them.
        readers_saw = bool(watched[ref]) and settled is not None and not contract.partitioned
        before[ref] = rows_of(lake, ref, watched[ref], settled) if readers_saw else None
        wanted_of[ref] = wanted
        run = partial(_run_windows, lake, model, spans, result.run_id, dq, engine)
        return Step(run, spans == [ALL_TIME] and _alone(lake, model))

    def finish(model: Model, runs: list[ModelRun]) -> None:
        ref, contract = model.ref, model.contract
        result.runs.extend(runs)
        for run in runs:
            if progress:
                progress(run)
        if any(r.blocked for r in runs):
            blocked.update(downstream(models, {ref}))
        wanted = wanted_of[ref]
        partitioned = contract.partitioned and wanted is not None
        columns = watched[ref]
        if columns and contract.partitioned:
            # Only the windows its runs rewrote can differ from what its readers were built from.
            assert contract.partition_by is not None
            within = (contract.partition_by, [(r.start, r.end) for r in runs]) if partitioned else None
            was = rows_of(lake, ref, columns, settled, within) if settled else None
            rebuilt[ref] = Rebuilt(was, rows_of(lake, ref, columns, within=within))
        elif columns:
            rebuilt[ref] = Rebuilt(before[ref], rows_of(lake, ref, columns))
        # Readers of a partitioned model recompute the partitions it wrote. An unpartitioned model is whole
        # again: an unpartitioned reader is rebuilt whole, a partitioned one for the days its rows that
        # changed feed (``_reach``); the days of its inputs stand here only for "it ran".
        written = _written(runs, contract.partition_period) if partitioned else wanted
        if written is None or written or not contract.partitioned:
            days[ref] = written

    with _recorded(lake, result, began, read), _dq_log(lake) as dq:
        run_in_dependency_order(models, plan, finish, engine.workers)
    _in_model_order(result, models)
    return result


def _arrivals(
    lake: Lake, refs: list[TableRef], since: dict[str, int], read: dict[str, int], workers: int
) -> list[Arrivals | None]:
    """What each bronze table gained since the watermark, the tables opened side by side (each load of a
    year of days' log, ~20 ms, lets go of the GIL; the build reads them next anyway)."""

    def gained(ref: TableRef) -> Arrivals | None:
        before, now = since.get(str(ref)), read[str(ref)]
        return arrivals(lake, ref, before, now) if before != now else Arrivals({}, None)

    if workers <= 1:
        return [gained(ref) for ref in refs]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="arrivals") as pool:
        return list(pool.map(gained, refs))


def _run_windows(
    lake: Lake,
    model: Model,
    spans: list[tuple[date, date]],
    run_id: str,
    dq: list[CheckResult],
    engine: ModelEngine,
) -> list[ModelRun]:
    """One run of ``model`` per window, one after the other; its table checked once, after the last."""
    runs: list[ModelRun] = []
    for i, (s, e) in enumerate(spans):
        before_runs = [p for r in runs for p in r.partitions]
        last = i == len(spans) - 1
        windows = [(r.start, r.end) for r in runs]
        runs.append(run_model(lake, model, s, e, run_id, last, before_runs, dq, windows, engine))
    return runs


def _by_window(model: Model, changed: list[TableRef]) -> bool:
    """Whether ``model`` runs for the days that changed rather than all of time: a partitioned model, and a merge
    whose ``changed`` inputs are all bronze (their days are the days the new versions landed, which its window
    reads; any other input that changed, a delivery zone redrawn, may change any of its rows)."""
    merges = model.contract.write_mode == "merge" and all(i.layer == "bronze" for i in changed)
    return model.contract.partitioned or merges


def _alone(lake: Lake, model: Model) -> bool:
    """Whether ``model``'s run over all of time takes the machine to itself: its inputs hold more than
    ``ALONE_BYTES`` (its result beside another model's would raise the build's peak memory). A window reads its
    days only."""
    return sum(lake.size(ref) for ref in model.inputs) > ALONE_BYTES


def _in_model_order(result: Build, models: dict[TableRef, Model]) -> None:
    """The build's runs in the models' dependency order (a model's windows in the order they ran), whichever
    finished first."""
    order = {ref: i for i, ref in enumerate(models)}
    result.runs.sort(key=lambda run: order.get(run.ref, len(order)))


def _reach(
    lake: Lake,
    models: dict[TableRef, Model],
    reader: Model,
    ref: TableRef,
    days: dict[TableRef, Days],
    rebuilt: dict[TableRef, Rebuilt],
    result: Build,
) -> Days:
    """The days of ``reader``'s window that the build's changes to its input ``ref`` touch: the new bronze
    partitions or the partitions a partitioned model wrote; for an unpartitioned model, whose one row can feed
    any day (a SKU's cost, every line that sold it), the days its changed rows feed by the reader's contract
    (engine/reach.py), all of time when it has no rule. A partitioned model whose days are not all the reader's
    (an order's day, its refunds' days) reaches the partitions it wrote and the days its changed rows feed by the
    reader's rule, when it names one."""
    if not reader.contract.partitioned or ref not in models:
        return days[ref]
    partitioned = models[ref].contract.partitioned
    if partitioned and str(ref) not in reader.contract.changed_inputs:
        return days[ref]
    reached = changed_days(lake, reader, ref, rebuilt[ref]) if ref in rebuilt else None
    if partitioned:
        written = days[ref]
        reached = None if reached is None or written is None else written | reached
    result.reached[(reader.ref, ref)] = reached
    return reached


def lacks_contract_columns(lake: Lake, model: Model) -> bool:
    """True when the model's table exists without a column its contract declares (a column added to the model
    since the table was built): a windowed run could not write it, and old partitions would lack its values."""
    if not lake.exists(model.ref):
        return False
    held = {f.name for f in lake.delta(model.ref).schema().fields}
    missing = sorted(set(model.contract.columns) - held)
    if missing:
        log.info(
            "model rebuilt in full: its table lacks contract columns",
            extra={"model": str(model.ref), "missing": missing},
        )
    return bool(missing)


def _every_source_landed(lake: Lake, models: dict[TableRef, Model]) -> bool:
    return all(lake.exists(ref) for ref in bronze_inputs(models))


def _missing_inputs(lake: Lake, model: Model, built: set[TableRef]) -> list[str]:
    """The silver and gold tables ``model`` reads (or its relationship checks look up) that neither exist nor were
    built by this build: a model cannot run without them (a missing bronze table reads as empty)."""
    needed = [*model.inputs, *relationship_targets(model)]
    return sorted({str(i) for i in needed if i.layer != "bronze" and i not in built and not lake.exists(i)})


def lookback_of(models: dict[TableRef, Model], ref: TableRef) -> int:
    """How many days before the newest the builds of what ``ref`` feeds read again: the largest lookback among
    the models downstream of it. A row landing for an older day is late beyond the lookback (still built: an
    incremental build rebuilds a changed day whatever its age)."""
    return max((models[m].contract.lookback_days for m in downstream(models, {ref})), default=0)


def new_build_id() -> str:
    return uuid.uuid4().hex[:12]


@contextmanager
def _recorded(lake: Lake, result: Build, began: datetime, read: dict[str, int]) -> Iterator[None]:
    """Record the build in ops.builds when it ends: ``success`` or ``blocked``, or ``failed`` when a model run
    raised (then the error goes on to the caller), so that every build that ended has its row."""
    try:
        yield
    except Exception:
        record(lake, result, began, read, "failed")
        raise
    record(lake, result, began, read)


@contextmanager
def _dq_log(lake: Lake) -> Iterator[list[CheckResult]]:
    """The check results of a build, written to ops.dq_results in one commit when it ends (a commit per model
    run cost ~40 ms each), also when a run fails half way."""
    results: list[CheckResult] = []
    try:
        yield results
    finally:
        record_results(lake, results)


def bronze_inputs(models: dict[TableRef, Model]) -> list[TableRef]:
    """The bronze tables the models read: where their changes come from."""
    return sorted({i for model in models.values() for i in model.inputs if i.layer == "bronze"})


def spans_of(days: frozenset[date], lookback_days: int = 0, period: str = "day") -> list[tuple[date, date]]:
    """The days as windows (first, last). Days less than a week apart (beyond the lookback) share a window:
    a run costs about a second whatever its size (connection, Delta commit, checks), more than recomputing a
    few days in between; a late file for a day months ago still gets a window of its own. A monthly model's
    days count as their months (its runs recompute whole months): one window per run of months next to each
    other, never two runs of the same month."""
    if period == "month":
        days = frozenset(day.replace(day=1) for day in days)
        lookback_days += 31  # the first days of two months next to each other are at most 31 days apart
    spans: list[tuple[date, date]] = []
    for day in sorted(days):
        if spans and (day - spans[-1][1]) <= timedelta(days=lookback_days + JOIN_DAYS):
            spans[-1] = (spans[-1][0], day)
        else:
            spans.append((day, day))
    return spans


def _written(runs: list[ModelRun], period: str = "day") -> Days:
    """The partitions the runs wrote, as days (a month's partition: every day of the month); None (all of time)
    when a partition value is not a day."""
    written = {p for run in runs for p in run.partitions}
    if not all(isinstance(p, date) for p in written):
        return None
    days = {p.date() if isinstance(p, datetime) else p for p in written}
    if period == "month":
        days = {first + timedelta(days=i) for first in days for i in range(month_end(first).day)}
    return frozenset(days)


def record(lake: Lake, result: Build, began: datetime, read: dict[str, int], status: str | None = None) -> None:
    """Log the build in ops.builds: with ``read`` (the bronze versions it started from) as the watermark of
    the next incremental build, when it succeeded."""
    windows: dict[str, list[tuple[date, date]]] = {}
    for run in result.runs:
        windows.setdefault(str(run.ref), []).append((run.start, run.end))
    status = status or ("blocked" if result.blocked else "success")
    rows = sum(r.rows for r in result.runs)
    record_build(lake, BuildRecord(result.run_id, result.mode, status, began, read, windows, rows))
    log.info("build recorded", extra={"run_id": result.run_id, "mode": result.mode, "status": status, "rows": rows})
