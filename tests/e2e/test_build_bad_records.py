"""Bad records dropped in the landing folders, ingested and built by the real CLI: each one ends in a quarantine
table with its rule and reason, the tables downstream are still built, `retreasure build` and `retreasure build
--incremental` both exit 0, and each build's ops.builds row is true (models, rows, the run id of its DQ results).

The bad records: a delivery zone without its zone_id, a customer location that is not a Point, a POS line whose
type cell holds a quoted newline, a web event without its type. Before, the first two stalled every hourly build
and the last two vanished between bronze and silver.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from retreasure.exitcodes import ExitCode
from retreasure.lake import Lake, TableRef
from retreasure_sim.model import Truth
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.helpers import copy_lake

pytestmark = pytest.mark.e2e

BUILDS, DQ = TableRef("ops", "builds"), TableRef("ops", "dq_results")


def _env(lake: Path, landing: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETREASURE_")}
    env.update(
        RETREASURE_LAKE_URI=str(lake),
        RETREASURE_LANDING_DIR=str(landing),
        RETREASURE_PII_HMAC_KEY=HMAC_KEY,
        RETREASURE_PII_VAULT_KEY=VAULT_KEY,
    )
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retreasure", *args], env=env, capture_output=True, text=True, timeout=900
    )


def _first(pattern: str, landing: Path) -> Path:
    return sorted(landing.glob(pattern))[0]


def _drop_bad_files(source_landing: Path, landing: Path) -> None:
    """Real files beside the simulator's, each made from one of its own with one record spoilt."""
    zones = json.loads(_first("geo/zones/*.geojson", source_landing).read_text())
    zone = zones["features"][0]
    del zone["properties"]["zone_id"]
    zone["properties"]["valid_from"] = "2025-03-15"
    (landing / "geo" / "zones").mkdir(parents=True)
    (landing / "geo" / "zones" / "zones_2025-03-15.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [zone]})
    )
    customers = json.loads(_first("geo/customers/*.geojson", source_landing).read_text())
    customer = customers["features"][0]
    customer["properties"]["customer_id"] = "C-NOT-A-POINT"
    square = [[[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]]]
    customer["geometry"] = {"type": "Polygon", "coordinates": square}
    (landing / "geo" / "customers").mkdir(parents=True)
    (landing / "geo" / "customers" / "customers_2025-03-15.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": [customer]})
    )

    # The first whole sale line of a sales file with the usual header (a faulty world truncates some files, resends
    # them, and drifts the header of others; a quiet store has empty days).
    files = [(path, path.read_text()) for path in sorted(source_landing.glob("pos/sales/*/*/*.csv"))]
    usual = Counter(text.partition("\n")[0] for _, text in files).most_common(1)[0][0]
    parsed = [(path, list(csv.DictReader(io.StringIO(text)))) for path, text in files if text.startswith(usual)]
    sales, rows, line = next(
        (path, rows, row) for path, rows in parsed for row in rows if row["type"] == "sale" and row["tax"]
    )
    bad = {**line, "receipt_id": line["receipt_id"] + "-NL", "type": "sa\nle"}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    writer.writerow(bad)
    target = landing / sales.relative_to(source_landing).with_name("sales_23.csv")
    target.parent.mkdir(parents=True)
    target.write_text(out.getvalue())

    clicks = _first("web/clickstream/*.jsonl", source_landing)
    event = json.loads(clicks.read_text().splitlines()[0])
    event.pop("type")
    event["messageId"] = "no-type-" + event["messageId"]
    (landing / "web" / "clickstream").mkdir(parents=True)
    (landing / "web" / "clickstream" / clicks.name).write_text(json.dumps(event) + "\n")


def _rows(lake: Lake, sql: str, *refs: TableRef) -> list[dict[str, Any]]:
    return lake.query(sql, list(refs)).to_pylist()


def _quarantined(lake: Lake, model: str, column: str, value: str) -> list[dict[str, Any]]:
    ref = TableRef("quarantine", f"silver_{model}")
    assert lake.exists(ref), f"nothing quarantined from silver.{model}"
    found = _rows(lake, f"SELECT rule, reason, row_json FROM {ref}", ref)
    return [r for r in found if json.loads(r["row_json"]).get(column) == value]


def _assert_true_build_row(lake: Lake, mode: str) -> None:
    last = _rows(lake, f"SELECT * FROM {BUILDS} ORDER BY finished_at DESC LIMIT 1", BUILDS)[0]
    assert (last["mode"], last["status"]) == (mode, "success")
    assert last["models"] > 0 and last["rows"] > 0, last
    assert json.loads(last["windows"]), last
    checks = _rows(lake, f"SELECT check_name FROM {DQ} WHERE run_id = '{last['run_id']}'", DQ)
    assert {c["check_name"] for c in checks} >= {"conservation"}, "the build's DQ results carry another run id"


def test_bad_records_are_quarantined_and_neither_build_stalls(bronze_lake: tuple[Truth, Lake], tmp_path: Path) -> None:
    lake = copy_lake(bronze_lake[1], tmp_path / "lake")
    landing = tmp_path / "landing"
    env = _env(Path(lake.uri), landing)
    first = _cli(env, "build")
    assert first.returncode == ExitCode.OK, first.stdout[-3000:] + first.stderr[-3000:]
    assert "built   silver.geo" in first.stdout
    _assert_true_build_row(lake, "full")

    _drop_bad_files(Path(bronze_lake[1].uri).parent / "landing", landing)
    for source in ("geo", "pos", "web"):
        _cli(env, "ingest", "--source", source)
    assert _rows(
        lake,
        "SELECT 1 FROM bronze.geo_customer_locations WHERE record_key = 'C-NOT-A-POINT'",
        *[TableRef("bronze", "geo_customer_locations")],
    ), "the location did not land"

    hourly = _cli(env, "build", "--incremental")
    assert hourly.returncode == ExitCode.OK, hourly.stdout[-3000:] + hourly.stderr[-3000:]
    _assert_true_build_row(lake, "incremental")
    again = _cli(env, "build")
    assert again.returncode == ExitCode.OK, again.stdout[-3000:] + again.stderr[-3000:]
    _assert_true_build_row(lake, "full")

    zone = [
        r
        for r in _rows(
            lake,
            "SELECT rule, reason, row_json FROM quarantine.silver_delivery_zones",
            *[TableRef("quarantine", "silver_delivery_zones")],
        )
        if json.loads(r["row_json"])["zone_id"] is None
    ]
    assert zone and all(r["rule"].startswith("not_null") and "zone_id" in r["reason"] for r in zone)
    location = _quarantined(lake, "geo", "customer_id", "C-NOT-A-POINT")
    assert location and "lon" in location[0]["reason"]
    line = [r for r in _quarantined(lake, "stg_pos_order_lines", "line_type", "sa\nle")]
    assert line and line[0]["rule"] == "accepted_values(line_type)" and line[0]["reason"]
    event = [
        r
        for r in _rows(
            lake,
            "SELECT rule, reason, row_json FROM quarantine.silver_web_events",
            *[TableRef("quarantine", "silver_web_events")],
        )
        if str(json.loads(r["row_json"])["event_id"]).startswith("no-type-")
    ]
    assert event and event[0]["reason"]
    # Downstream of the quarantined rows, the tables were rebuilt by the last build.
    last = _rows(lake, f"SELECT run_id, windows FROM {BUILDS} ORDER BY finished_at DESC LIMIT 1", BUILDS)[0]
    built = json.loads(last["windows"])
    assert {"silver.geo", "gold.dim_customer", "silver.orders"} <= set(built), sorted(built)
