"""The hourly incremental build: bronze lands part by part (most of the period, then its last hour, then the
rest with a store's day of sales arriving late); after each part an incremental build. The result equals a full
build of the same bronze, and each run rebuilt only the partitions the new data touched, plus lookbacks."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from retreasure.engine.build import JOIN_DAYS, Build, build_incremental
from retreasure.engine.changes import BUILDS
from retreasure.engine.models import Model, load_models
from retreasure.lake import Lake, TableRef
from retreasure_sim.model import Truth
from tests.conftest import FAULTY
from tests.helpers import rows_without

LAST_DAY = FAULTY.start + timedelta(days=FAULTY.days - 1)
CUTOFF = datetime.combine(LAST_DAY, time(12), UTC)  # bronze up to here is there before the first build
HOUR = CUTOFF + timedelta(hours=1)  # the hour the first incremental run sees
LATE_DAY = FAULTY.start + timedelta(days=4)  # a store's sales file for this day lands only at the end
# When a record changed; a file record has only its day, taken as the day's last second.
CHANGED = "coalesce(record_updated_at, CAST(partition_date + INTERVAL 1 DAY AS TIMESTAMPTZ) - INTERVAL 1 SECOND)"
PARTS = (
    f"{CHANGED} < $cutoff AND NOT (source = 'pos' AND partition_date = $late)",
    f"{CHANGED} >= $cutoff AND {CHANGED} < $hour",
    f"({CHANGED} >= $hour OR (source = 'pos' AND partition_date = $late))",
)
VOLATILE = ("run_id",)


def _params(where: str) -> dict[str, object]:
    values = {"cutoff": CUTOFF, "hour": HOUR, "late": LATE_DAY}
    return {k: v for k, v in values.items() if f"${k}" in where}


def _part(source: Lake, ref: TableRef, step: int) -> pa.Table:
    return source.query(f"SELECT * FROM {ref} WHERE {PARTS[step]}", [ref], _params(PARTS[step]))


def _held_days(source: Lake, step: int) -> dict[TableRef, set[date]]:
    """The bronze partitions each part lands in, from the rows themselves."""
    days = {}
    for ref in source.tables("bronze"):
        sql = f"SELECT DISTINCT partition_date AS d FROM {ref} WHERE {PARTS[step]}"
        days[ref] = set(source.query(sql, [ref], _params(PARTS[step])).column("d").to_pylist())
    return days


@pytest.fixture(scope="module")
def landed(bronze_lake: tuple[Truth, Lake], tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, list[Build]]:
    """A lake whose bronze arrives in three parts, with an incremental build after each, and one more build
    with nothing new."""
    source = bronze_lake[1]
    lake = Lake(shutil.copytree(source.uri, tmp_path_factory.mktemp("incremental") / "lake"))
    parts = {ref: [_part(source, ref, step) for step in range(3)] for ref in source.tables("bronze")}
    for ref, (first, *_rest) in parts.items():
        assert sum(p.num_rows for p in parts[ref]) == source.count(ref), f"{ref}: the parts do not add up"
        lake.overwrite(ref, first, partition_by=["partition_date"])
    builds = [build_incremental(lake)]
    for step in (1, 2):
        for ref, pieces in parts.items():
            if pieces[step].num_rows:  # what an ingest run does: append the rows bronze does not hold yet
                lake.insert_new(ref, pieces[step], ["record_hash"], partition_by="partition_date")
        builds.append(build_incremental(lake))
    builds.append(build_incremental(lake))
    return lake, builds


def test_incremental_builds_equal_a_full_build_of_the_same_bronze(
    landed: tuple[Lake, list[Build]], gold_lake: tuple[Truth, Lake]
) -> None:
    lake, builds = landed
    full = gold_lake[1]
    assert [b.mode for b in builds] == ["full", "incremental", "incremental", "incremental"]
    assert not any(b.blocked for b in builds)
    tables = full.tables("silver") + full.tables("gold")
    assert set(tables) == set(lake.tables("silver") + lake.tables("gold"))
    for ref in tables:
        expected, got = rows_without(full, ref, VOLATILE), rows_without(lake, ref, VOLATILE)
        assert got == expected, f"{ref}: {len(got)} rows incrementally, {len(expected)} in full"


def _covered(build: Build, ref: TableRef) -> set[date]:
    """Every day the build's runs of ``ref`` covered, lookbacks included."""
    return {r.start + timedelta(days=i) for r in build.runs if r.ref == ref for i in range((r.end - r.start).days + 1)}


def _expected_days(
    build: Build, models: dict[TableRef, Model], held: dict[TableRef, set[date]]
) -> dict[TableRef, set[date]]:
    """What each model should have been run for, from the rows that landed and the partitions the runs wrote:
    bronze inputs give the days their new rows landed in; a partitioned input the partitions it wrote; an
    unpartitioned input passes on the days of its own inputs to an unpartitioned reader (which runs whole), and
    to a partitioned one the days its changed rows feed (``_from``)."""
    sources: dict[TableRef, set[date]] = {ref: days for ref, days in held.items() if days}
    for ref, model in models.items():
        days = set().union(*(_from(build, sources, ref, i) for i in model.inputs))
        runs = [r for r in build.runs if r.ref == ref]
        sources[ref] = {p for r in runs for p in r.partitions} if model.contract.partitioned else days
    return sources


def _from(build: Build, sources: dict[TableRef, set[date]], ref: TableRef, i: TableRef) -> set[date]:
    """The days ``ref`` should run for from its input ``i``. The days a changed dimension feeds come from the
    reader's rule (its rows before and after): what they must be is proven by the builds equalling full ones;
    here they bound the windows (all of time would fail the test)."""
    if (ref, i) in build.reached:
        return set(build.reached[(ref, i)] or ())
    return sources.get(i, set())


def _whole_months(days: set[date], later: int) -> set[date]:
    """Every day of the months ``days`` fall in and of the ``later`` months after each."""
    firsts = {
        date(d.year + (d.month - 1 + k) // 12, (d.month - 1 + k) % 12 + 1, 1) for d in days for k in range(later + 1)
    }
    whole = set()
    for first in firsts:
        day = first
        while day.month == first.month:
            whole.add(day)
            day += timedelta(days=1)
    return whole


def test_an_hourly_run_rebuilds_only_what_the_new_hour_touched(
    landed: tuple[Lake, list[Build]], bronze_lake: tuple[Truth, Lake]
) -> None:
    builds = landed[1]
    models = load_models()
    for step in (1, 2):
        build, held = builds[step], _held_days(bronze_lake[1], step)
        sources = _expected_days(build, models, held)
        ran = {r.ref for r in build.runs}
        for ref, model in models.items():
            inputs = set().union(*(_from(build, sources, ref, i) for i in model.inputs if i in ran or i in held))
            if not model.contract.partitioned:
                assert (ref in ran) == bool(inputs), ref
                runs = [r for r in build.runs if r.ref == ref]
                changed = {i for i in model.inputs if i in ran or held.get(i)}
                if model.contract.write_mode == "merge" and all(i.layer == "bronze" for i in changed):
                    # A merge reads the days its new versions landed in, never all of time.
                    assert not any(r.whole for r in runs) and inputs <= _covered(build, ref), ref
                else:
                    assert all(r.whole for r in runs), ref
                continue
            lookback = model.contract.lookback_days
            wanted = {d - timedelta(days=k) for d in inputs for k in range(lookback + 1)}
            if model.contract.partition_period == "month":  # whole months, and the months after that read them
                wanted = _whole_months(wanted, model.contract.lookahead)
            # Never all of history: the touched days, each with its lookback, and at most the few days between
            # two touched days that share a window.
            assert not any(r.whole for r in build.runs if r.ref == ref), f"{ref} rebuilt all of time"
            covered = _covered(build, ref)
            assert wanted <= covered, ref
            assert all(any(abs((d - w).days) < lookback + JOIN_DAYS for w in wanted) for d in covered), ref
    # The catalogue's new versions merged by their days, not all of them read again.
    windowed = [r for b in builds[1:3] for r in b.runs if not r.whole]
    merged = {r.ref for r in windowed if models[r.ref].contract.write_mode == "merge"}
    assert {TableRef("silver", "stg_shopify_products"), TableRef("silver", "geo")} <= merged, merged
    assert not any(r.ref == TableRef("silver", "stg_pos_orders") for r in builds[1].runs)  # no store sales then
    late = {r.start for r in builds[2].runs if r.ref == TableRef("silver", "stg_pos_orders")}
    assert LATE_DAY in late  # the store's late day is picked up on its own
    assert builds[3].runs == []  # nothing new, nothing rebuilt


def test_each_build_is_logged_with_the_bronze_versions_it_read(landed: tuple[Lake, list[Build]]) -> None:
    lake, builds = landed
    log = lake.query(f"SELECT * FROM {BUILDS} ORDER BY started_at", [BUILDS])
    rows = log.to_pylist()
    assert [(r["run_id"], r["mode"]) for r in rows] == [(b.run_id, b.mode) for b in builds]
    assert [r["models"] for r in rows] == [len(b.runs) for b in builds]
    assert {r["status"] for r in rows} == {"success"}
    hour = json.loads(rows[1]["windows"])
    assert hour == {
        str(ref): [[r.start.isoformat(), r.end.isoformat()] for r in builds[1].runs if r.ref == ref]
        for ref in {r.ref for r in builds[1].runs}
    }
    # The last build read every bronze table as it stands: the watermark the next one starts from.
    bronze = {str(ref): lake.delta(ref).version() for ref in lake.tables("bronze")}
    assert json.loads(rows[-1]["bronze_versions"]) == bronze


def test_a_blocking_check_stops_downstream_and_keeps_the_watermark(lake_copy: Lake, tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "silver").mkdir(parents=True)
    (root / "gold").mkdir()
    probe = "SELECT partition_date AS day, source FROM bronze.pos_sales WHERE partition_date >= @start_date"
    (root / "silver" / "probe.sql").write_text(probe)
    contract = "description: d\ngrain: g\nkeys: [day]\nwrite_mode: overwrite_partitions\npartition_by: day\n"
    (root / "silver" / "probe.yml").write_text(contract + "checks: [{check: unique, columns: [source]}]\n")
    (root / "gold" / "reader.sql").write_text("SELECT * FROM silver.probe WHERE day BETWEEN @start_date AND @end_date")
    (root / "gold" / "reader.yml").write_text(contract)
    models = load_models(root)

    first = build_incremental(lake_copy, models)  # no build yet: in full, and the many rows per source fail
    assert first.mode == "full" and first.blocked and [str(r.ref) for r in first.runs] == ["silver.probe"]
    again = build_incremental(lake_copy, models)  # the failed build moved no watermark: in full again
    assert again.mode == "full" and [str(r.ref) for r in again.runs] == ["silver.probe"]
