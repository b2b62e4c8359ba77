"""A model's table is cut into files of about ``FILE_BYTES`` that each hold a run of days: a late change to an old
day rewrites the files holding that day, not the table's whole history (which the hourly build would otherwise
rewrite every hour). Files are cut small here so that the test lake's three weeks make several. The small files
a table gathers are compacted, in day order."""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from retreasure.engine import runner
from retreasure.engine.compaction import compact_models
from retreasure.engine.models import load_models
from retreasure.lake import Lake, TableRef
from tests.helpers import days_in_write_order


def _days_by_file(lake: Lake, ref: TableRef, part: str) -> dict[str, tuple[date, date]]:
    """Each data file of ``ref`` with the first and last day it holds."""
    held = {}
    for uri in lake.delta(ref).file_uris():
        days = pc.min_max(pq.read_table(uri.removeprefix("file://"), columns=[part]).column(part))
        held[uri] = (days["min"].as_py(), days["max"].as_py())
    return held


@pytest.mark.parametrize("table", ["silver.web_events", "gold.mart_web_products_daily"])  # an upsert, a window
def test_an_old_day_rebuilt_rewrites_only_the_files_holding_it(
    lake_copy: Lake, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    monkeypatch.setattr(runner, "FILE_BYTES", 4 << 10)  # delta-rs cuts no file smaller than 2,048 rows
    models = load_models()
    ref = TableRef.parse(table)
    for needed, model in models.items():  # the model's inputs, then the model, built whole
        runner.run_model(lake_copy, model)
        if needed == ref:
            break
    model, part = models[ref], models[ref].contract.partition_by
    assert part is not None
    before = _days_by_file(lake_copy, ref, part)
    rows_before = lake_copy.query(f"SELECT * FROM {ref} ORDER BY ALL", [ref])
    assert len(before) >= 2, before  # cut by size, not one file for the table

    first = min(first for first, _ in before.values())
    day = first + timedelta(days=model.contract.lookback_days + 1)  # an old day, its lookback inside the table
    runner.run_model(lake_copy, model, day, day)

    after = _days_by_file(lake_copy, ref, part)
    start, end = runner.widened(model, day, day)
    holding = {uri for uri, (first, last) in before.items() if first <= end and last >= start}
    rewritten = before.keys() - after.keys()
    assert rewritten, "the day's files were not rewritten"
    assert rewritten <= holding, (rewritten - holding, start, end)
    assert before.keys() - holding, "every file holds the day: nothing shows the others are left alone"
    assert before.keys() - holding <= after.keys()
    assert lake_copy.query(f"SELECT * FROM {ref} ORDER BY ALL", [ref]).equals(rows_before)


def test_compaction_rewrites_small_files_in_day_order(lake_copy: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    models = load_models()
    ref = TableRef("silver", "web_events")
    for needed, model in models.items():
        runner.run_model(lake_copy, model)
        if needed == ref:
            break
    model = models[ref]
    with monkeypatch.context() as small:  # the table written in small files, as hourly windows leave them
        small.setattr(runner, "FILE_BYTES", 4 << 10)
        runner.run_model(lake_copy, model)
    before = _days_by_file(lake_copy, ref, "event_date")
    rows_before = lake_copy.query(f"SELECT * FROM {ref} ORDER BY ALL", [ref])
    assert len(before) >= 3, before

    (done,) = compact_models(lake_copy, {ref: model})
    # Three weeks of test events are far below a file's size: every file is small, all rewritten into one.
    assert (done.files_before, done.files_rewritten, done.files_after, done.commits) == (len(before), len(before), 1, 1)
    assert lake_copy.query(f"SELECT * FROM {ref} ORDER BY ALL", [ref]).equals(rows_before)
    (uri,) = lake_copy.delta(ref).file_uris()
    assert days_in_write_order(uri, "event_date", model.contract.keys) == 21

    (again,) = compact_models(lake_copy, {ref: model})
    assert (again.files_after, again.commits) == (1, 0)
