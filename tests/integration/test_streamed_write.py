"""A model's result too large to hold whole is judged and written batch by batch as DuckDB produces it. Built so
(every result streamed, in batches of a few dozen rows), the lake equals the one built holding each result whole:
the same rows, the same quarantine and the same check counts (a held result is written in day, then key order; delta-rs
interleaves the batches of a streamed one in its own order, each in order within)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from retreasure.contracts.model import Contract
from retreasure.engine.build import build
from retreasure.engine.models import Model, load_models
from retreasure.engine.runner import DuckDBEngine, _by_whole_keys, _newest, run_model
from retreasure.lake import Lake, TableRef
from retreasure.quality.checks import RowJudge, apply_row_rules
from retreasure_sim.model import Truth
from tests.helpers import copy_lake, days_in_write_order, rows_without

STREAMED = DuckDBEngine(hold_bytes=0, batch_rows=37)
VOLATILE = ("run_id", "quarantined_at", "checked_at")


@pytest.fixture(scope="module")
def streamed(bronze_lake: tuple[Truth, Lake], tmp_path_factory: pytest.TempPathFactory) -> Lake:
    lake = copy_lake(bronze_lake[1], tmp_path_factory.mktemp("streamed") / "lake")
    runs = build(lake, engine=STREAMED)
    assert [str(r.ref) for r in runs if r.blocked] == []
    return lake


def test_a_streamed_build_writes_the_tables_and_quarantine_a_held_one_writes(
    streamed: Lake, gold_lake: tuple[Truth, Lake]
) -> None:
    held = gold_lake[1]
    tables = [*held.tables("silver"), *held.tables("gold"), *held.tables("quarantine")]
    assert set(tables) == {*streamed.tables("silver"), *streamed.tables("gold"), *streamed.tables("quarantine")}
    assert any(held.count(ref) for ref in held.tables("quarantine"))  # the faulty lake's spoilt rows
    for ref in tables:
        expected, got = rows_without(held, ref, VOLATILE), rows_without(streamed, ref, VOLATILE)
        assert got == expected, f"{ref}: {len(got)} rows streamed, {len(expected)} held"


def test_a_streamed_build_counts_every_check_as_a_held_one(streamed: Lake, gold_lake: tuple[Truth, Lake]) -> None:
    dq = TableRef("ops", "dq_results")
    columns = "table_name, check_name, kind, severity, checked, failed, passed, detail"
    expected = gold_lake[1].query(f"SELECT {columns} FROM {dq} ORDER BY ALL", [dq]).to_pylist()
    got = streamed.query(f"SELECT {columns} FROM {dq} ORDER BY ALL", [dq]).to_pylist()
    assert {r["kind"] for r in expected} == {"row", "table"}
    assert got == expected


def test_streamed_upsert_rows_keep_the_newest_version_of_a_key_split_across_batches(tmp_path: Path) -> None:
    # In key order, NULLs last, as the model's query hands them over; "a" and the NULL key repeat across batches.
    rows = pa.table(
        {
            "k": ["a", "a", "a", "b", "c", "c", None, None, None],
            "v": [1, 3, 2, 1, 5, 4, 1, 2, 3],
            "day": [1, 1, 1, 1, 2, 2, 3, 3, 3],
        }
    )
    batches = [rows.slice(0, 2), rows.slice(2, 2), rows.slice(4, 0), rows.slice(4, 3), rows.slice(7, 2)]
    pieces = list(_by_whole_keys(batches, ["k"]))
    assert pa.concat_tables(pieces).equals(rows)
    # No key's rows in two pieces: each can be kept to one row per key by itself.
    assert [p.column("k").to_pylist() for p in pieces] == [["a", "a", "a"], ["b", "c", "c"], [None, None, None]]
    lake, ref = Lake(tmp_path / "lake"), TableRef("silver", "upserted")
    newest = [_newest(lake, ref, piece, ["k"], "day", "v", True) for piece in pieces]
    assert pa.concat_tables(newest).to_pylist() == [
        {"k": "a", "v": 3, "day": 1},
        {"k": "b", "v": 1, "day": 1},
        {"k": "c", "v": 5, "day": 2},
        {"k": None, "v": 3, "day": 3},
    ]
    assert pa.concat_tables(newest).equals(_newest(lake, ref, rows, ["k"], "day", "v", True))


def test_row_rules_judged_batch_by_batch_quarantine_and_count_what_the_whole_result_does(
    gold_lake: tuple[Truth, Lake],
) -> None:
    lake, ref = gold_lake[1], TableRef("silver", "web_events")
    contract = load_models()[ref].contract
    rows = lake.query(f"SELECT * FROM {ref} ORDER BY event_id LIMIT 200", [ref])
    # Spoil some rows as a model's query could hand them over: no event name, no visitor, an order without its id.
    names = rows.column("event_name").to_pylist()
    visitors = rows.column("anonymous_id").to_pylist()
    for i in range(0, 200, 9):
        names[i] = None
    for i in range(4, 200, 13):
        visitors[i] = None
    rows = rows.set_column(rows.schema.get_field_index("event_name"), "event_name", pa.array(names, pa.string()))
    rows = rows.set_column(rows.schema.get_field_index("anonymous_id"), "anonymous_id", pa.array(visitors, pa.string()))
    rows = rows.set_column(rows.schema.get_field_index("user_id"), "user_id", pa.nulls(200, pa.string()))
    kept, dropped, quarantined, results = apply_row_rules(rows, contract, str(ref), "run")
    assert 0 < kept.num_rows < rows.num_rows and quarantined.num_rows == rows.num_rows - kept.num_rows

    judge = RowJudge(contract, str(ref), "run")
    kept_by_batch = list(judge.kept(rows.to_batches(max_chunksize=7)))
    assert pa.concat_tables(kept_by_batch).equals(kept)
    assert judge.kept_rows == kept.num_rows
    assert dropped.num_rows == rows.num_rows - kept.num_rows  # the rows as they came, for an upsert's write
    assert pa.concat_tables(judge.dropped).equals(dropped)
    # The same quarantined rows (rule by rule within each batch, where the whole result lists them rule by rule).
    order = [("rule", "ascending"), ("row_json", "ascending")]
    expected = quarantined.drop_columns(["quarantined_at"]).sort_by(order)
    assert judge.quarantined.drop_columns(["quarantined_at"]).sort_by(order).equals(expected)
    counts = [(r.check_name, r.checked, r.failed, r.passed, r.detail) for r in results]
    assert [(r.check_name, r.checked, r.failed, r.passed, r.detail) for r in judge.results] == counts
    assert any(failed for _, _, failed, _, _ in counts)


def _versions(sql: str) -> Model:
    contract = Contract(
        description="versions of k",
        grain="one row per k",
        keys=["k"],
        write_mode="upsert",
        partition_by="day",
        version_column="v",
    )
    return Model(TableRef("silver", "versions"), Path("versions.sql"), sql, contract)


VERSIONS = [
    ("a", "2025-01-01", 1),
    ("a", "2025-01-01", 3),
    ("b", "2025-01-01", 1),
    ("c", "2025-01-02", 2),
    ("d", "2025-01-03", 1),
]
MOVED = ("b", "2025-01-02", 4)  # b again, in another partition: its newest version needs the whole result


@pytest.mark.parametrize("rows", [VERSIONS, [*VERSIONS, MOVED]], ids=["keys within a partition", "a key moved"])
def test_a_streamed_upsert_keeps_the_newest_version_per_key_as_a_held_one(
    rows: list[tuple[str, str, int]], tmp_path: Path
) -> None:
    values = ", ".join(f"('{k}', DATE '{day}', {v})" for k, day, v in rows)
    model = _versions(f"SELECT * FROM (VALUES {values}) t(k, day, v)")
    written = {}
    for name, engine in (("held", DuckDBEngine()), ("streamed", DuckDBEngine(hold_bytes=0, batch_rows=1))):
        lake = Lake(tmp_path / name)
        run = run_model(lake, model, engine=engine)
        assert not run.blocked
        table = lake.delta(model.ref)
        # Nothing left behind by a streamed write given up on: every file in the folder is in the table.
        on_disk = {str(f) for f in Path(lake.table_uri(model.ref)).rglob("*.parquet")}
        assert on_disk == {uri.removeprefix("file://") for uri in table.file_uris()}
        if name == "held":  # one batch, written as given; delta-rs interleaves a stream's batches in its own order
            for uri in table.file_uris():
                days_in_write_order(uri, "day", ["k"])
        written[name] = lake.query(f"SELECT k, CAST(day AS VARCHAR) AS day, v FROM {model.ref} ORDER BY k", [model.ref])
    newest = {k: (day, v) for k, day, v in sorted(rows, key=lambda r: r[2])}
    assert written["held"].to_pylist() == [{"k": k, "day": d, "v": v} for k, (d, v) in sorted(newest.items())]
    assert written["streamed"].equals(written["held"])
