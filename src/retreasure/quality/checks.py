"""Checks from contracts. Row rules split a model's output into rows that pass and rows that go to
quarantine with the rule and the reason; table checks judge the written table. Every check writes its pass
and fail counts to ``ops.dq_results``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from retreasure.engine.contract import AcceptedValues, Contract, Expression, NotNull, Relationship, RowCount, Unique
from retreasure.lake.store import Lake, TableRef

DQ_RESULTS = TableRef("ops", "dq_results")
DQ_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("table_name", pa.string()),
        ("check_name", pa.string()),
        ("kind", pa.string()),  # row (failing rows quarantined) | table
        ("severity", pa.string()),  # error (blocking) | warn
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
        return not self.passed and self.severity == "error"


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
    assert isinstance(check, RowCount)
    return f"row_count(>= {check.min})"


def _failing(check: NotNull | AcceptedValues | Expression) -> tuple[str, str]:
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


def apply_row_rules(
    table: pa.Table, contract: Contract, name: str, run_id: str
) -> tuple[pa.Table, pa.Table, list[CheckResult]]:
    """(rows to keep, rows to quarantine, one result per rule). Warn-level rules count but keep their rows."""
    now = datetime.now(UTC)
    con = duckdb.connect()
    con.register("result", table.append_column("__row", pa.array(range(table.num_rows), pa.int64())))
    dropped: set[int] = set()
    quarantined: list[dict[str, object]] = []
    results = []
    for rule in contract.row_rules:
        condition, reason = _failing(rule)
        failing = con.execute(f"SELECT __row, to_json(result) AS row_json FROM result WHERE {condition}").fetchall()
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
            for row, row_json in failing:
                if row not in dropped:
                    dropped.add(row)
                    record = json.loads(row_json)
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
    con.close()
    if not dropped:
        return table, pa.Table.from_pylist([], schema=QUARANTINE_SCHEMA), results
    keep = pa.array([i not in dropped for i in range(table.num_rows)])
    return table.filter(keep), pa.Table.from_pylist(quarantined, schema=QUARANTINE_SCHEMA), results


def run_table_checks(lake: Lake, ref: TableRef, contract: Contract, run_id: str) -> list[CheckResult]:
    """Judge the table as written: keys unique, references resolve, enough rows."""
    now = datetime.now(UTC)
    results = []
    for check in contract.table_checks:
        refs = [ref]
        if isinstance(check, Unique):
            cols = ", ".join(f'"{c}"' for c in check.columns)
            sql = (
                f"SELECT count(*) AS checked, coalesce(sum(n - 1), 0) AS failed FROM "
                f"(SELECT {cols}, count(*) AS n FROM {ref} GROUP BY ALL) "
            )
            detail = "duplicate keys"
        elif isinstance(check, Relationship):
            layer, table, column = check.to.split(".")
            other = TableRef(layer, table)
            refs.append(other)
            sql = (
                f"SELECT count(*) AS checked, count(*) FILTER (WHERE o.k IS NULL) AS failed FROM {ref} t "
                f'LEFT JOIN (SELECT DISTINCT "{column}" AS k FROM {other}) o ON t."{check.column}" = o.k '
                f'WHERE t."{check.column}" IS NOT NULL'
            )
            detail = f"values of {check.column} missing from {check.to}"
        else:
            sql = f"SELECT count(*) AS checked, CASE WHEN count(*) < {check.min} THEN 1 ELSE 0 END AS failed FROM {ref}"
            detail = f"fewer than {check.min} rows"
        if not all(lake.exists(r) for r in refs):
            checked, failed, detail = 0, 1, f"table {' or '.join(str(r) for r in refs)} does not exist"
        else:
            row = lake.query(sql, refs).to_pylist()[0]
            checked, failed = int(row["checked"]), int(row["failed"])
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
    return results


def record_results(lake: Lake, results: list[CheckResult]) -> None:
    if results:
        lake.append(DQ_RESULTS, pa.Table.from_pylist([asdict(r) for r in results], schema=DQ_SCHEMA))
