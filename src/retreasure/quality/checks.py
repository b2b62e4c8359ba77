"""Checks from contracts. Row rules split a model's output into rows that pass and rows that go to
quarantine with the rule and the reason; table checks judge the written table. Every check writes its pass
and fail counts to ``ops.dq_results``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, NamedTuple

import duckdb
import pyarrow as pa

from retreasure.contracts.model import (
    AcceptedValues,
    BronzeSource,
    Conservation,
    Contract,
    Expression,
    NotNull,
    Relationship,
    RowCount,
    Unique,
)
from retreasure.contracts.staged import STAGED
from retreasure.lake.sql import first_per_key, on_good_rows
from retreasure.lake.store import Lake, TableRef, connection

# The windows a run read bronze for: (first day, last day) of partition_date; None for all of time.
Windows = Sequence[tuple[date, date]] | None

DQ_RESULTS = TableRef("ops", "dq_results")
DQ_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("table_name", pa.string()),
        ("check_name", pa.string()),
        ("kind", pa.string()),  # row (failing rows quarantined) | table
        ("severity", pa.string()),  # error (rows quarantined; a table check blocks downstream) | warn
        ("checked", pa.int64()),
        ("failed", pa.int64()),
        ("passed", pa.bool_()),
        ("detail", pa.string()),
        ("checked_at", pa.timestamp("us", tz="UTC")),
    ]
)
QUARANTINE_SCHEMA = pa.schema(
    [
        ("table_name", pa.string()),
        ("rule", pa.string()),
        ("reason", pa.string()),
        ("row_json", pa.string()),
        ("run_id", pa.string()),
        ("quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class CheckResult:
    run_id: str
    table_name: str
    check_name: str
    kind: str
    severity: str
    checked: int
    failed: int
    passed: bool
    detail: str
    checked_at: datetime

    @property
    def blocking(self) -> bool:
        """Only a failed error-level table check stops what reads the table. A failed row rule has already
        moved its rows to quarantine: the rows kept are sound, and one bad record must not stall every build."""
        return not self.passed and self.kind == "table" and blocks_downstream(self.severity)


def blocks_downstream(severity: str) -> bool:
    """Whether a failed table check of this severity stops the models that read its table: the one rule the
    engine's builds and Dagster's blocking asset checks both follow."""
    return severity == "error"


def check_name(check: object) -> str:
    if isinstance(check, NotNull):
        return f"not_null({', '.join(check.columns)})"
    if isinstance(check, AcceptedValues):
        return f"accepted_values({check.column})"
    if isinstance(check, Expression):
        return check.name
    if isinstance(check, Unique):
        return f"unique({', '.join(check.columns)})"
    if isinstance(check, Relationship):
        return f"relationships({check.column} -> {check.to})"
    if isinstance(check, Conservation):
        return "conservation"
    assert isinstance(check, RowCount)
    return f"row_count(>= {check.min})"


def failing_condition(check: NotNull | AcceptedValues | Expression) -> tuple[str, str]:
    """(SQL that is true for a failing row, the reason a person reads)."""
    if isinstance(check, NotNull):
        condition = " OR ".join(f'"{c}" IS NULL' for c in check.columns)
        return condition, f"a value is missing in {', '.join(check.columns)}"
    if isinstance(check, AcceptedValues):
        values = ", ".join(json.dumps(v) if isinstance(v, str) else str(v) for v in check.values)
        values = values.replace('"', "'")
        return (
            f'"{check.column}" IS NOT NULL AND "{check.column}" NOT IN ({values})',
            f"{check.column} is not one of {check.values}",
        )
    return f"NOT coalesce(({check.expression}), false)", f"violates {check.expression}"


class Judged(NamedTuple):
    """A result after its row rules: the rows kept, the rows an error-level rule dropped as they came (what an
    upsert takes as its keys' newest versions: ``engine.runner``), those as quarantine rows, one result per rule."""

    kept: pa.Table
    dropped: pa.Table
    quarantined: pa.Table
    results: list[CheckResult]


def apply_row_rules(
    table: pa.Table, contract: Contract, name: str, run_id: str, con: duckdb.DuckDBPyConnection | None = None
) -> Judged:
    """The rows judged by the contract's row rules. Warn-level rules count but keep their rows. On ``con`` when
    given (the connection the rows came from)."""
    dropped, quarantined, results = rule_failures(table, contract, name, run_id, con)
    if not dropped:
        return Judged(table, table.schema.empty_table(), quarantined, results)
    keep = pa.array([i not in dropped for i in range(table.num_rows)])
    return Judged(table.filter(keep), table.take(sorted(dropped)), quarantined, results)


class RowJudge:
    """The row rules of a result judged batch by batch, for a result too large to hold whole (written as it streams
    out of DuckDB): ``kept`` passes each batch's kept rows on; the quarantined rows and each rule's counts add up
    across the batches to what ``apply_row_rules`` gives for the whole result. ``dropped`` holds the dropped rows of
    the batches passed on so far."""

    def __init__(self, contract: Contract, name: str, run_id: str) -> None:
        self.contract, self.name, self.run_id = contract, name, run_id
        self.kept_rows = 0
        self.dropped: list[pa.Table] = []
        self._quarantined: list[pa.Table] = []
        self._results: list[CheckResult] = []

    def kept(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.Table]:
        con = connection()  # the batches' own connection is busy streaming them
        try:
            for batch in batches:
                judged = apply_row_rules(pa.Table.from_batches([batch]), self.contract, self.name, self.run_id, con)
                self._add(judged)
                self.kept_rows += judged.kept.num_rows
                yield judged.kept
        finally:
            con.close()

    def _add(self, judged: Judged) -> None:
        if judged.quarantined.num_rows:
            self._quarantined.append(judged.quarantined)
        if judged.dropped.num_rows:
            self.dropped.append(judged.dropped)
        if not self._results:
            self._results = judged.results
            return
        for total, batch in zip(self._results, judged.results, strict=True):
            total.checked += batch.checked
            total.failed += batch.failed
            total.passed = total.passed and batch.passed
            total.detail = total.detail or batch.detail

    @property
    def quarantined(self) -> pa.Table:
        return pa.concat_tables(self._quarantined) if self._quarantined else QUARANTINE_SCHEMA.empty_table()

    @property
    def results(self) -> list[CheckResult]:
        return self._results


def rule_failures(
    table: pa.Table, contract: Contract, name: str, run_id: str, con: duckdb.DuckDBPyConnection | None = None
) -> tuple[set[int], pa.Table, list[CheckResult]]:
    """(positions of the rows an error-level rule drops, those rows as quarantine rows, one result per rule): the
    judgement itself, for an engine that keeps its rows elsewhere (Spark hands over only the rows that fail)."""
    now = datetime.now(UTC)
    own = con is None
    con = con or connection()
    judged = table.append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    con.register("result", judged)
    conditions = [failing_condition(rule) for rule in contract.row_rules]
    # Every rule in one scan that reads only the columns the rules name, the failing rows' JSON made afterwards
    # for them alone: a query per rule turning every column of every row into DuckDB's values cost a full build
    # more than its Delta writes.
    hits: list[tuple[Any, ...]] = []
    if conditions:
        flags = ", ".join(f"coalesce(({condition}), false)" for condition, _ in conditions)
        failing_any = " OR ".join(f"coalesce(({condition}), false)" for condition, _ in conditions)
        hits = con.execute(f"SELECT __row, {flags} FROM result WHERE {failing_any} ORDER BY __row").fetchall()
    row_json: dict[int, str] = {}
    if hits:
        con.register("__failing", judged.take([hit[0] for hit in hits]))
        row_json = dict(con.execute("SELECT __row, to_json(__failing) FROM __failing").fetchall())
        con.unregister("__failing")
    dropped: set[int] = set()
    quarantined: list[dict[str, object]] = []
    results = []
    for position, (rule, (_, reason)) in enumerate(zip(contract.row_rules, conditions, strict=True)):
        failing = [hit[0] for hit in hits if hit[1 + position]]
        results.append(
            CheckResult(
                run_id,
                name,
                check_name(rule),
                "row",
                rule.severity,
                table.num_rows,
                len(failing),
                not failing or rule.severity == "warn",
                reason if failing else "",
                now,
            )
        )
        if rule.severity == "error":
            for row in failing:
                if row not in dropped:
                    dropped.add(row)
                    record = json.loads(row_json[row])
                    record.pop("__row", None)
                    quarantined.append(
                        {
                            "table_name": name,
                            "rule": check_name(rule),
                            "reason": reason,
                            "row_json": json.dumps(record, default=str, sort_keys=True),
                            "run_id": run_id,
                            "quarantined_at": now,
                        }
                    )
    con.unregister("result")
    if own:
        con.close()
    return dropped, pa.Table.from_pylist(quarantined, schema=QUARANTINE_SCHEMA), results


# What a check reads when a run rewrote only some partitions (a windowed run of a partitioned model); a run over
# all of time reads the whole table for every table check. Row rules judge the run's own rows before the write,
# so they already follow the window. Rows outside the written partitions were judged when they were written.
Scope = Literal["run rows", "written keys", "written rows", "table"]
WINDOWED_SCOPE: dict[type, Scope] = {
    NotNull: "run rows",
    AcceptedValues: "run rows",
    Expression: "run rows",
    # The keys of the written rows, counted across the whole table: a key can repeat in a partition not
    # rewritten (a row whose partition value moved). Keys that hold the partition column stay in the written ones.
    Unique: "written keys",
    # The written rows' values against the whole target. A key the target lost since leaves older rows dangling
    # unseen until the next full build.
    Relationship: "written rows",
    # A count of the whole table, read from the Delta log, not the rows.
    RowCount: "table",
    # The bronze records of the run's windows, found anywhere in the table or its quarantine (a record's row may
    # fall in a partition other than its bronze day).
    Conservation: "table",
}


def run_table_checks(
    lake: Lake,
    ref: TableRef,
    contract: Contract,
    run_id: str,
    written: Sequence[object] | None = None,
    windows: Windows = None,
    rows: pa.Table | None = None,
) -> list[CheckResult]:
    """Judge the table as written: keys unique, references resolve, enough rows, every bronze record placed.
    With ``written`` (the partitions a windowed run rewrote), each check reads what its scope in
    ``WINDOWED_SCOPE`` says; conservation reads the bronze records of ``windows`` (all of them when None).
    ``rows``: every row the table holds, as just written by a run that replaced it whole; the checks read them
    from memory rather than reading back the files just written (a day-partitioned year is hundreds of files)."""
    if not contract.table_checks:
        return []
    now = datetime.now(UTC)
    results = []
    part = contract.partition_by if written is not None else None
    # One connection for all the checks: opening one costs more than most checks' queries. The checks count and
    # compare keys, so DuckDB's own Parquet reader serves them (faster over many files than Arrow datasets).
    targets = [TableRef(*c.to.split(".")[:2]) for c in contract.table_checks if isinstance(c, Relationship)]
    bronze = [TableRef(*s.ref) for s in contract.sources]
    quarantine = quarantine_of(ref)
    # Bronze too: conservation reads its records there (``_conservation``).
    from_files = [r for r in (ref, *targets, *bronze, quarantine) if rows is None or r != ref]
    # Conservation reads bronze only within the windows, when given: their files alone are named (``Lake.connect``).
    con = lake.connect(from_files, native=True, days=dict.fromkeys(bronze, windows) if windows else None)
    if rows is not None:
        con.register("__written_rows", rows)
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {ref.layer}")
        con.execute(f"CREATE VIEW {ref} AS SELECT * FROM __written_rows")
    try:
        for check in contract.table_checks:
            scope = WINDOWED_SCOPE[type(check)] if part else "table"
            rows = in_partitions(ref, part, written or ()) if part and scope != "table" else str(ref)
            refs = [ref]
            sql = ""
            if isinstance(check, Unique):
                cols = ", ".join(f'"{c}"' for c in check.columns)
                counts = f"SELECT {cols}, count(*) AS n FROM {rows} GROUP BY ALL"
                sql = f"SELECT count(*) AS checked, coalesce(sum(n - 1), 0) AS failed FROM ({counts})"
                if scope == "written keys" and part not in check.columns:
                    # The written keys first (a few partitions), then only the table's rows of those keys counted:
                    # the semi-join hands the keys' range to the scan, which skips the files outside it, and only
                    # the written keys are grouped, not every key of the table's history.
                    written_keys = f"SELECT DISTINCT {cols} FROM {rows}"
                    counts = f"SELECT {cols}, count(*) AS n FROM {ref} SEMI JOIN w USING ({cols}) GROUP BY ALL"
                    sql = (
                        f"WITH w AS MATERIALIZED ({written_keys}) SELECT count(*) AS checked, "
                        f"coalesce(sum(n - 1), 0) AS failed FROM ({counts})"
                    )
                detail = "duplicate keys"
            elif isinstance(check, Relationship):
                layer, table, column = check.to.split(".")
                other = TableRef(layer, table)
                refs.append(other)
                # The values written first, then only those looked up in the target (the semi-join hands their range
                # to the target's scan): a run's few values do not read every distinct value of the target's history.
                values = f'SELECT "{check.column}" AS v FROM {rows} WHERE "{check.column}" IS NOT NULL'
                found = f'SELECT DISTINCT "{column}" AS k FROM {other} WHERE "{column}" IN (SELECT v FROM t)'
                sql = (
                    f"WITH t AS MATERIALIZED ({values}), o AS MATERIALIZED ({found}) "
                    "SELECT count(*) AS checked, count(*) FILTER (WHERE o.k IS NULL) AS failed "
                    "FROM t LEFT JOIN o ON t.v = o.k"
                )
                detail = f"values of {check.column} missing from {check.to}"
            elif isinstance(check, Conservation):
                refs += [TableRef(*s.ref) for s in check.sources if lake.exists(TableRef(*s.ref))]
                detail = "bronze records neither in the table nor in its quarantine with a reason"
            else:
                detail = f"fewer than {check.min} rows"
            if not all(lake.exists(r) for r in refs):
                checked, failed, detail = 0, 1, f"table {' or '.join(str(r) for r in refs)} does not exist"
            elif isinstance(check, RowCount):
                checked = lake.count(ref)
                failed = int(checked < check.min)
            elif isinstance(check, Conservation):
                held = lake.exists(quarantine)
                checked, failed = _conservation(lake, con, ref, check.sources, windows, held, _types(con, ref))
            else:
                checked, failed = (int(v) for v in con.execute(sql).fetchone() or (0, 0))
            results.append(
                CheckResult(
                    run_id,
                    str(ref),
                    check_name(check),
                    "table",
                    check.severity,
                    checked,
                    failed,
                    failed == 0,
                    detail if failed else "",
                    now,
                )
            )
    finally:
        con.close()
    return results


def quarantine_of(ref: TableRef) -> TableRef:
    """Where the rows of ``ref`` that break a row rule go."""
    return TableRef("quarantine", f"{ref.layer}_{ref.name}")


def _conservation(
    lake: Lake,
    con: duckdb.DuckDBPyConnection,
    ref: TableRef,
    sources: Sequence[BronzeSource],
    windows: Windows,
    quarantined: bool,
    types: dict[str, str],
) -> tuple[int, int]:
    """(records checked, records missing) over every source: each newest bronze record (per record_key, without
    a landing error, newest as ``contracts/staged.py`` declares for its table) that the source's predicate takes,
    in the windows, must be named by the lineage column of a row of the table or of a row quarantined from it
    with a reason. Checked: the records placed and the records missing. ``types``: the table's column types, as
    DuckDB names them."""
    days = " OR ".join(f"partition_date BETWEEN {sql_literal(s)} AND {sql_literal(e)}" for s, e in windows or ())
    in_days = f" AND ({days})" if days else ""
    placed = []
    for column in sorted({s.lineage for s in sources}):
        # A lineage list (the records an aggregate row sums) counts each of its keys; a single key counts as itself.
        # The table's own column is read as what it is, a key or a list of keys (through JSON, 218k web events' keys
        # took 0.09 s of CPU against 0.04 s); a quarantined row's lineage is JSON.
        if types.get(column) == "VARCHAR":
            placed.append(f'SELECT "{column}" AS k FROM {ref}')
        elif types.get(column) == "VARCHAR[]":
            placed.append(f'SELECT unnest("{column}") AS k FROM {ref}')
        else:
            placed.append(_keys_of_json(f'SELECT to_json("{column}") AS lineage FROM {ref}'))
        if quarantined:
            placed.append(
                _keys_of_json(
                    f"SELECT json_extract(row_json, '$.{column}') AS lineage FROM {quarantine_of(ref)} "
                    f"WHERE table_name = '{ref}' AND coalesce(reason, '') <> '' AND coalesce(rule, '') <> ''"
                )
            )
    keys = " UNION ALL ".join(placed)
    records = " UNION ALL ".join(f"SELECT record_key FROM {s.table} WHERE error IS NULL{in_days}" for s in sources)
    # Over windows, only the windows' records are looked for among the placed keys, where every key the table ever
    # placed was gathered (growing with its history): the semi-join hands the records' key range to the table's
    # scan, which skips the files outside it (the year's web events' keys follow their days). A key placed in any
    # partition, or quarantined, still counts.
    records_only = " AND k IN (SELECT record_key FROM records)" if days else ""
    found, unplaced = con.execute(
        f"WITH records AS MATERIALIZED (SELECT DISTINCT record_key FROM ({records})), "
        f"placed AS MATERIALIZED (SELECT DISTINCT k FROM ({keys}) WHERE k IS NOT NULL{records_only}) "
        "SELECT count(p.k), list(r.record_key) FILTER (WHERE p.k IS NULL) "
        "FROM records r LEFT JOIN placed p ON p.k = r.record_key"
    ).fetchone() or (0, None)
    if not unplaced:
        return int(found), 0
    # A placed record is accounted for whatever the source's predicate says of it, so the predicate (a parse of the
    # raw JSON) judges only the records placed nowhere, read only when there are some: the newest version of each,
    # as staging chooses it, that the predicate takes is missing (the year's web events: 2.2 s where every version
    # was judged first). DuckDB's own reader evaluates the predicate on every row it reads, malformed ones too:
    # it reads their raw as NULL (``on_good_rows``).
    con.register("__unplaced", pa.table({"record_key": pa.array(unplaced, pa.string())}))
    wanted = f"WHERE error IS NULL{in_days} AND record_key IN (SELECT record_key FROM __unplaced)"
    judged = [
        f"SELECT * EXCLUDE (raw), coalesce(({on_good_rows(source.records)}), false) AS __claimed "
        f"FROM {source.table} {wanted}"
        for source in sources
    ]
    missing = " UNION ALL ".join(
        "SELECT record_key FROM ("
        + first_per_key(f"SELECT * FROM ({rows})", ["record_key"], STAGED[source.ref[1]].newest.value)
        + ") WHERE __claimed"
        for rows, source in zip(judged, sources, strict=True)
    )
    (failed,) = con.execute(f"SELECT count(DISTINCT record_key) FROM ({missing})").fetchone() or (0,)
    return int(found) + int(failed), int(failed)


def _types(con: duckdb.DuckDBPyConnection, ref: TableRef) -> dict[str, str]:
    """The column types of ``ref`` as DuckDB names them; none when it was not built (its checks then fail as such)."""
    try:
        return dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {ref})").fetchall())
    except duckdb.CatalogException:
        return {}


def _keys_of_json(lineages: str) -> str:
    """The record keys of ``lineages`` (a query of JSON ``lineage`` values: a key, or an array of keys) as ``k``."""
    return (
        "SELECT unnest(CASE WHEN json_type(lineage) = 'ARRAY' THEN from_json(lineage, '[\"VARCHAR\"]') "
        f"ELSE [json_extract_string(lineage, '$')] END) AS k FROM ({lineages})"
    )


def in_partitions(ref: TableRef, column: str, values: Sequence[object]) -> str:
    """A subquery of the rows of ``ref`` in the partitions ``values``. The range lets DuckDB skip the other
    partitions' files; the list keeps the days between written partitions out."""
    if not values:
        return f"(SELECT * FROM {ref} WHERE false)"
    literals = sorted({sql_literal(v) for v in values})
    return (
        f'(SELECT * FROM {ref} WHERE "{column}" BETWEEN {sql_literal(min(values))} AND {sql_literal(max(values))} '
        f'AND "{column}" IN ({", ".join(literals)}))'
    )


def sql_literal(value: object) -> str:
    """``value`` as a SQL literal: a day, a time, a number, or quoted text."""
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat()}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def record_results(lake: Lake, results: list[CheckResult]) -> None:
    if results:
        lake.append(DQ_RESULTS, pa.Table.from_pylist([asdict(r) for r in results], schema=DQ_SCHEMA))
