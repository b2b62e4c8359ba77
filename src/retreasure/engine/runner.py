"""Runs one model: its SQL over the Delta inputs, its row rules, then a write in its contract's mode, on an engine
(DuckDB in process by default; Spark, ``engine/spark.py``, for the scale path).

Write modes:
- ``full``: replace the table.
- ``overwrite_partitions``: replace the partitions of the window the model was run for (facts, marts).
- ``upsert``: keep the newest version per key, rewriting only the partitions the new rows fall in (silver
  entities read incrementally from bronze; the partition column must not change for a key).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from retreasure.engine.models import ALL_TIME, Model
from retreasure.lake.bronze import BRONZE_SCHEMA
from retreasure.lake.sql import first_per_key
from retreasure.lake.store import Lake, TableRef, connection
from retreasure.log import get_logger
from retreasure.quality.checks import CheckResult, apply_row_rules, quarantine_of, record_results, run_table_checks

log = get_logger("engine")


@dataclass
class ModelRun:
    ref: TableRef
    start: date = ALL_TIME[0]  # the window run, lookback included
    end: date = ALL_TIME[1]
    rows: int = 0
    quarantined: int = 0
    partitions: list[date] = field(default_factory=list)  # the partitions written (partitioned tables)
    partition_rows: dict[date, int] = field(default_factory=dict)  # rows each written partition holds now
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def whole(self) -> bool:
        """True when the run covered all of time (a full build, or an unpartitioned model)."""
        return (self.start, self.end) == ALL_TIME

    @property
    def blocked(self) -> bool:
        return any(c.blocking for c in self.checks)


@dataclass
class Computed:
    """A model's rows for a window after its row rules: ``kept`` in the engine's own form (an Arrow table, a Spark
    DataFrame), the quarantined rows as Arrow, one result per rule."""

    kept: Any
    kept_rows: int
    quarantined: pa.Table
    row_checks: list[CheckResult]


class ModelEngine(Protocol):
    """Where a model's SQL runs and its table is written; everything else about a run (quarantine, table checks,
    the DQ log, the build's order and windows) is the same on every engine."""

    name: str

    def compute(self, lake: Lake, model: Model, start: date, end: date, run_id: str) -> Computed: ...

    def write(self, lake: Lake, model: Model, kept: Any, start: date, end: date) -> dict[date, int]:
        """Write ``kept`` in the contract's mode; {partition: its rows now} of the partitions written."""
        ...


class DuckDBEngine:
    """The local default: the SQL on DuckDB in process, the rows as Arrow, written by delta-rs."""

    name = "duckdb"

    def compute(self, lake: Lake, model: Model, start: date, end: date, run_id: str) -> Computed:
        con = _connect(lake, model)
        try:
            result = con.execute(_in_write_order(model, model.render(start, end))).fetch_arrow_table()
            kept, quarantined, row_checks = apply_row_rules(result, model.contract, str(model.ref), run_id, con)
        finally:
            con.close()
        return Computed(kept, kept.num_rows, quarantined, row_checks)

    def write(self, lake: Lake, model: Model, kept: Any, start: date, end: date) -> dict[date, int]:
        return _write(lake, model, kept, start, end).partition_rows

    def write_rows(self, lake: Lake, model: Model, kept: pa.Table, start: date, end: date) -> Written:
        """As ``write``, with the rows the table holds now when the write replaced it whole (what its table checks
        then read from memory instead of its files)."""
        return _write(lake, model, kept, start, end)


DUCKDB = DuckDBEngine()


@dataclass
class Written:
    """What a write did: {partition: its rows now} of the partitions written, and the table's rows when the write
    replaced the whole table (None when it replaced some partitions only)."""

    partition_rows: dict[date, int]
    table: pa.Table | None = None


def run_model(
    lake: Lake,
    model: Model,
    start: date = ALL_TIME[0],
    end: date = ALL_TIME[1],
    run_id: str | None = None,
    table_checks: bool = True,
    written_before: Sequence[object] = (),
    dq: list[CheckResult] | None = None,
    windows_before: Sequence[tuple[date, date]] = (),
    engine: ModelEngine = DUCKDB,
) -> ModelRun:
    """Build ``model`` for the window [start, end] (all of time by default), its contract's lookback days
    before ``start`` included, and check it. ``table_checks=False`` applies the row rules only: for a run
    that more windows of the same model follow, the table being checked once, after the last, over the
    partitions of every window (``written_before``) and the bronze days they read (``windows_before``). A
    windowed run's table checks read the partitions it wrote, a whole run's the whole table. The results go
    to ``dq`` when given (a build writes them to ``ops.dq_results`` once, at its end), else straight to
    ``ops.dq_results``. ``engine`` runs the SQL and writes the table; quarantine and checks are the same on all."""
    run_id = run_id or uuid.uuid4().hex[:12]
    contract = model.contract
    start, end = widened(model, start, end)
    computed = engine.compute(lake, model, start, end, run_id)
    quarantined, row_checks = computed.quarantined, computed.row_checks
    if quarantined.num_rows:
        lake.insert_new(
            quarantine_of(model.ref),
            quarantined,
            ["table_name", "rule", "row_json"],
        )
    run = ModelRun(model.ref, start, end, computed.kept_rows, quarantined.num_rows)
    if isinstance(engine, DuckDBEngine):
        written_now = engine.write_rows(lake, model, computed.kept, start, end)
    else:
        written_now = Written(engine.write(lake, model, computed.kept, start, end))
    run.partition_rows = written_now.partition_rows
    run.partitions = sorted(run.partition_rows)
    windowed = not run.whole and contract.partitioned
    written = sorted({*written_before, *run.partitions}) if windowed else None
    windows = [*windows_before, (start, end)] if windowed else None
    checked = (
        run_table_checks(lake, model.ref, contract, run_id, written, windows, rows=written_now.table)
        if table_checks
        else []
    )
    run.checks = row_checks + checked
    if dq is None:
        record_results(lake, run.checks)
    else:
        dq.extend(run.checks)
    log.info(
        "model built",
        extra={
            "model": str(model.ref),
            "rows": run.rows,
            "quarantined": run.quarantined,
            "failed_checks": [c.check_name for c in run.checks if not c.passed],
        },
    )
    return run


def widened(model: Model, start: date, end: date) -> tuple[date, date]:
    """The window a model runs for: the contract's lookback before ``start``, so that late changes to the days
    before are read (and, for partition overwrites, written) again; for a monthly table, the whole months the days
    fall in and its ``lookahead`` months after (rows there that read the window's). The one place the window is
    widened: neither the SQL nor the orchestrator does it. All of time stays all of time."""
    if (start, end) == ALL_TIME:
        return start, end
    contract = model.contract
    start = start - timedelta(days=contract.lookback_days)
    if contract.partition_period == "month":
        return start.replace(day=1), month_end(end, contract.lookahead)
    return start, end + timedelta(days=contract.lookahead)


def month_end(day: date, later: int = 0) -> date:
    """The last day of ``day``'s month, or of the month ``later`` months after it."""
    first = date(day.year + (day.month - 1 + later + 1) // 12, (day.month - 1 + later + 1) % 12 + 1, 1)
    return first - timedelta(days=1)


def _connect(lake: Lake, model: Model) -> duckdb.DuckDBPyConnection:
    """Views over the model's inputs; a bronze table never ingested reads as empty rather than failing. Silver
    and gold inputs are read by DuckDB's own Parquet reader (faster than an Arrow dataset over a day-partitioned
    year of files); bronze as Arrow datasets (see ``Lake.connect``)."""
    con = lake.connect(model.inputs, native={ref for ref in model.inputs if ref.layer != "bronze"})
    # The connection made a view of every input that exists: asking DuckDB spares opening each table again.
    present = {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = current_database()"
        ).fetchall()
    }
    for ref in model.inputs:
        if str(ref) not in present:
            if ref.layer != "bronze":
                raise ValueError(f"{model.ref} reads {ref}, which has not been built")
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {ref.layer}")
            con.register(f"__empty_{ref.name}", pa.Table.from_pylist([], schema=BRONZE_SCHEMA))
            con.execute(f"CREATE VIEW {ref} AS SELECT * FROM __empty_{ref.name}")
    return con


def _write(lake: Lake, model: Model, data: pa.Table, start: date, end: date) -> Written:
    """Write the run's rows in the contract's mode."""
    contract, ref = model.contract, model.ref
    mode, part = contract.write_mode, contract.partition_by
    whole = (start, end) == ALL_TIME or not lake.exists(ref)
    if mode == "full" or (mode == "overwrite_partitions" and whole):
        lake.overwrite(ref, data, partition_by=[part] if part else None)
    elif mode == "overwrite_partitions":
        assert part is not None
        lake.overwrite(ref, data, predicate=f"{part} >= '{start.isoformat()}' AND {part} <= '{end.isoformat()}'")
    else:
        assert part is not None and contract.version_column is not None
        data = _newest(lake, ref, data, contract.keys, part, contract.version_column, whole)
        if whole:
            lake.overwrite(ref, data, partition_by=[part])
        elif data.num_rows:
            days = ", ".join(f"'{d.isoformat()}'" for d in pc.unique(data.column(part)).to_pylist())
            lake.overwrite(ref, data, predicate=f"{part} IN ({days})")
    table = data if mode == "full" or whole else None
    if not part or not data.num_rows:
        return Written({}, table)
    counts = pc.value_counts(data.column(part)).to_pylist()
    return Written({c["values"]: c["counts"] for c in counts}, table)


def _newest(
    lake: Lake, ref: TableRef, data: pa.Table, keys: list[str], part: str, version: str, whole: bool
) -> pa.Table:
    """The rows of the partitions ``data`` touches, as they stand after it: newest version per key wins."""
    if whole and _one_per_key(data, keys):
        # Nothing to choose between: the rows as they came, already in key order (``_in_write_order``), as the
        # dedupe below leaves them, without a window over every column of the whole table, a round trip through
        # DuckDB or a sorted second copy of the table.
        return data
    con = connection()
    con.register("incoming", data)
    source = "SELECT *, 1 AS __new FROM incoming"
    if not whole and data.num_rows:
        touched = pc.unique(data.column(part).cast(pa.string())).to_pylist()
        existing = lake.delta(ref).to_pyarrow_dataset(file_pruning_predicate=[(part, "in", touched)])
        con.register("existing", existing)
        source += " UNION ALL BY NAME SELECT *, 0 AS __new FROM existing"
    quoted = [f'"{k}"' for k in keys]
    newest_rows = first_per_key(f"SELECT * EXCLUDE (__new) FROM ({source})", quoted, f'"{version}" DESC, __new DESC')
    newest = con.execute(f"{newest_rows} ORDER BY {', '.join(quoted)}").fetch_arrow_table()
    con.close()
    return newest.cast(data.schema)


def _in_write_order(model: Model, sql: str) -> str:
    """``sql`` with an upsert's rows in key order (NULLs last), the order its write keeps them in: DuckDB sorts
    while it produces the rows, where sorting them afterwards in Arrow held a second copy of the table (the
    year's 967k web events) beside the first through the write and the checks."""
    contract = model.contract
    if contract.write_mode != "upsert":
        return sql
    keys = ", ".join(f'"{k}" ASC NULLS LAST' for k in contract.keys)
    return f"SELECT * FROM (\n{sql}\n) ORDER BY {keys}"


def _one_per_key(data: pa.Table, keys: list[str]) -> bool:
    """True when no two rows share a key (NULL keys counted as one, as ``PARTITION BY`` groups them)."""
    return data.select(keys).group_by(keys).aggregate([]).num_rows == data.num_rows
