"""The month's finance files for accounting: every report as CSV, XLSX and Parquet, with a manifest.

Files go to ``<lake>/exports/finance/<YYYY-MM>/`` (or ``<out>/<YYYY-MM>/``). They are written into a hidden
folder beside it and renamed into place, so a killed export leaves the previous export (or none), never half a
month. A closed month exports to the same bytes every time while gold's numbers for it do not change: the
manifest holds no clock and names the gold tables read, not their versions (a nightly rebuild that changes no
number must not change the files); the versions go to the log. An open month (the current one, or one after the
last month with data) is refused unless ``allow_open``; its files are provisional and say so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from retreasure.lake import Lake
from retreasure.log import get_logger
from retreasure.serving.exports.cells import fixed, is_number
from retreasure.serving.exports.writers import FORMATS, write_csv, write_parquet, write_xlsx
from retreasure.serving.reports import (
    FINANCE,
    REPORTS,
    SOURCES,
    TAX,
    check_report,
    finance_report,
    has_margin,
    parse_period,
)

log = get_logger("exports")
MANIFEST = "manifest.json"
NOTES = {
    "neutralisation": "CSV and XLSX: a text cell starting with = + - @, a tab or a carriage return is prefixed "
    "with an apostrophe so that no spreadsheet runs it as a formula; numbers are never altered.",
    "parquet": "Parquet keeps the raw values and types (decimals as decimals): it is read by programs, not "
    "spreadsheets, so nothing is neutralised.",
    "totals": "Sums of each report's additive columns (ratios are not summed); the files carry no totals row.",
}


@dataclass(frozen=True)
class FinanceExport:
    """A finished export: where it is and what its manifest says."""

    period: str
    folder: Path
    manifest: dict[str, Any]

    @property
    def files(self) -> list[dict[str, Any]]:
        return list(self.manifest["files"])


def export_root(lake: Lake) -> Path:
    """``<lake>/exports/finance`` for a local lake; a remote lake needs a local ``out`` folder instead."""
    if not lake.is_local:
        raise ValueError(
            f"finance exports are written to a local folder, and the lake {lake.uri} is remote: pass --out DIR"
        )
    return Path(lake.uri.removeprefix("file://")) / "exports" / "finance"


def period_end(month: date) -> datetime:
    """The last second of the month: the timestamp the XLSX files carry."""
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime.combine(following - timedelta(days=1), time(23, 59, 59))


def open_reason(lake: Lake, month: date, today: date) -> str | None:
    """Why ``month`` is still open (its numbers may change), or None when it is closed."""
    if month >= today.replace(day=1):
        return f"{month:%Y-%m} is not over yet (today is {today})"
    sql = "SELECT max(month) AS last FROM (SELECT month FROM gold.mart_finance UNION ALL SELECT month FROM {tax})"
    last = lake.query(sql.format(tax=TAX), [FINANCE, TAX]).column("last")[0].as_py()
    if last is None or month > last:
        return f"{month:%Y-%m} is after the last month with data ({f'{last:%Y-%m}' if last else 'none'})"
    return None


def export_finance(
    lake: Lake,
    period: str,
    out: Path | str | None = None,
    allow_open: bool = False,
    today: date | None = None,
    reports: Sequence[str] = REPORTS,
) -> FinanceExport:
    """Write ``period``'s finance reports and manifest; ValueError for a bad or (without ``allow_open``) open
    period, a remote destination or an unknown report."""
    month = parse_period(period)
    for report in reports:
        check_report(report)
    if out is not None and "://" in str(out):
        raise ValueError(f"--out must be a local folder, not {out}")
    root = Path(out) if out is not None else export_root(lake)
    for ref in {SOURCES[r] for r in reports} | {FINANCE, TAX}:
        if not lake.exists(ref):
            raise ValueError(f"{ref} does not exist yet: build the gold models first")
    if "margin" in reports and not has_margin(lake):
        raise ValueError("the margin report needs cost_of_goods in gold.mart_finance: build the gold models")
    reason = open_reason(lake, month, today or datetime.now(UTC).date())
    if reason and not allow_open:
        raise ValueError(f"{reason}: the period is still open; pass --allow-open for a provisional export")

    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root, period)
    partial = root / f".{period}.partial-{uuid.uuid4().hex[:12]}"
    partial.mkdir()
    try:
        manifest = _write_period(lake, period, partial, reports, closed=reason is None)
        target = root / period
        _publish(partial, target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return FinanceExport(period, target, manifest)


def _write_period(lake: Lake, period: str, folder: Path, reports: Sequence[str], closed: bool) -> dict[str, Any]:
    versions = _versions(lake, reports)
    stamp = period_end(parse_period(period))
    files: list[dict[str, Any]] = []
    totals: dict[str, dict[str, int | str]] = {}
    for report in reports:
        table = finance_report(lake, report, period)
        totals[report] = report_totals(table)
        for fmt in FORMATS:
            path = folder / f"{report}_{period}.{fmt}"
            if fmt == "csv":
                write_csv(table, path)
            elif fmt == "xlsx":
                write_xlsx(table, path, stamp, sheet=report)
            else:
                write_parquet(table, path)
            files.append(_describe(path, fmt, report, table.num_rows))
    # The versions are read before and after: a build that committed in between would make them disagree.
    if _versions(lake, reports) != versions:
        raise RuntimeError("gold changed while the period was being exported: export it again")
    manifest: dict[str, Any] = {
        "period": period,
        "closed": closed,
        "generated_from": sorted(versions),
        "files": files,
        "totals": totals,
        "notes": NOTES,
    }
    if not closed:
        # Only a provisional export says when it was made: a closed month's manifest must not change.
        manifest["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    log.info("finance export written", extra={"period": period, "gold_versions": versions, "closed": closed})
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for path in folder.iterdir():
        _fsync(path)
    return manifest


def report_totals(table: pa.Table) -> dict[str, int | str]:
    """Each additive number column's sum: decimals as fixed-scale text (JSON numbers would be floats)."""
    totals: dict[str, int | str] = {}
    for field in table.schema:
        if not is_number(field.type) or field.name.endswith("_pct"):
            continue
        value = pc.sum(table.column(field.name)).as_py()
        if pa.types.is_decimal(field.type):
            totals[field.name] = fixed(value if value is not None else Decimal(0), field.type.scale)
        elif pa.types.is_integer(field.type):
            totals[field.name] = int(value or 0)
        else:
            totals[field.name] = repr(float(value or 0))
    return totals


def _versions(lake: Lake, reports: Sequence[str]) -> dict[str, int]:
    return {str(ref): lake.delta(ref).version() for ref in sorted({SOURCES[r] for r in reports})}


def _describe(path: Path, fmt: str, report: str, rows: int) -> dict[str, Any]:
    data = path.read_bytes()
    return {
        "name": path.name,
        "format": fmt,
        "report": report,
        "rows": rows,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }


def _publish(partial: Path, target: Path) -> None:
    """Rename the finished folder into place; an earlier export of the month is moved aside first, then removed."""
    if target.exists():
        previous = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:12]}")
        os.rename(target, previous)
        os.rename(partial, target)
        shutil.rmtree(previous)
    else:
        os.rename(partial, target)
    _fsync(target.parent)


def _remove_leftovers(root: Path, period: str) -> None:
    """What a killed export of this month left behind: hidden folders nobody reads."""
    for leftover in [*root.glob(f".{period}.partial-*"), *root.glob(f".{period}.old-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
