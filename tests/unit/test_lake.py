"""The lake's write modes on real Delta tables, read back through DuckDB."""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa
import pytest
from deltalake.schema import Field

from retreasure.lake import Lake, TableRef

T = TableRef("silver", "things")


def rows(lake: Lake, ref: TableRef = T) -> list[dict]:
    return lake.query(f"SELECT * FROM {ref} ORDER BY ALL", [ref]).to_pylist()


def test_table_names_cannot_escape_the_lake() -> None:
    for bad in ("../etc", "a/b", "1abc", "", "x;drop"):
        with pytest.raises(ValueError):
            TableRef("bronze", bad)


def test_insert_new_skips_keys_already_present_and_repeats_within_a_batch(lake: Lake) -> None:
    batch = pa.table({"k": ["a", "b", "a"], "day": ["d1", "d1", "d1"], "v": [1, 2, 3]})
    assert lake.insert_new(T, batch, ["k"], partition_by="day") == 2
    assert lake.insert_new(T, batch, ["k"], partition_by="day") == 0
    assert rows(lake) == [{"k": "a", "day": "d1", "v": 1}, {"k": "b", "day": "d1", "v": 2}]
    more = pa.table({"k": ["b", "c"], "day": ["d1", "d2"], "v": [9, 4]})
    assert lake.insert_new(T, more, ["k"], partition_by="day") == 1
    assert [r["k"] for r in rows(lake)] == ["a", "b", "c"]


def test_append_once_refuses_a_version_already_committed(lake: Lake) -> None:
    batch = pa.table({"v": [1, 2]})
    assert lake.append_once(T, batch, "loader", 1)
    assert not lake.append_once(T, batch, "loader", 1)
    assert not lake.append_once(T, batch, "loader", 0)
    assert lake.txn_version(T, "loader") == 1
    assert lake.append_once(T, batch, "loader", 2)
    assert lake.count(T) == 4


def test_the_latest_version_is_told_from_the_log_as_another_writer_left_it(lake: Lake) -> None:
    assert lake.latest_version(T) is None
    lake.append(T, pa.table({"v": [1]}))
    assert lake.latest_version(T) == lake.version(T) == 0
    other = Lake(lake.uri)  # another process's writes: this lake object never opened the table again
    other.append(T, pa.table({"v": [2]}))
    other.overwrite(T, pa.table({"v": [3]}))
    assert lake.latest_version(T) == 2 == other.version(T)


def test_partition_overwrite_replaces_only_the_matching_partition(lake: Lake) -> None:
    lake.overwrite(T, pa.table({"day": ["d1", "d1", "d2"], "v": [1, 2, 3]}), partition_by=["day"])
    lake.overwrite(T, pa.table({"day": ["d1"], "v": [10]}), predicate="day = 'd1'")
    assert rows(lake) == [{"day": "d1", "v": 10}, {"day": "d2", "v": 3}]


def test_merge_updates_matches_and_inserts_the_rest(lake: Lake) -> None:
    lake.merge(T, pa.table({"id": [1, 2], "name": ["one", "two"]}), ["id"])
    metrics = lake.merge(T, pa.table({"id": [2, 3], "name": ["TWO", "three"]}), ["id"])
    assert metrics["num_target_rows_updated"] == 1 and metrics["num_target_rows_inserted"] == 1
    assert rows(lake) == [{"id": 1, "name": "one"}, {"id": 2, "name": "TWO"}, {"id": 3, "name": "three"}]


def test_connect_exposes_every_table_as_layer_dot_name(lake: Lake) -> None:
    lake.append(TableRef("bronze", "a"), pa.table({"x": [1]}))
    lake.append(TableRef("ops", "b"), pa.table({"y": [2]}))
    assert lake.tables() == [TableRef("bronze", "a"), TableRef("ops", "b")]
    con = lake.connect()
    assert con.execute("SELECT x + (SELECT y FROM ops.b) FROM bronze.a").fetchone() == (3,)


D1, ONE = date(2025, 1, 1), timedelta(days=1)


def days(*numbers: int) -> pa.Array:
    """Day partitions, which DuckDB's own Parquet reader serves (a string partition goes through Arrow)."""
    return pa.array([D1 + (n - 1) * ONE for n in numbers], pa.date32())


def test_the_native_reader_reads_a_column_added_after_the_oldest_file_as_null_there(lake: Lake) -> None:
    lake.overwrite(T, pa.table({"day": days(1, 2), "v": [1, 2]}), partition_by=["day"])
    lake.delta(T).alter.add_columns(Field("note", "string"))  # another writer's ALTER TABLE: no file rewritten
    lake.append(T, pa.table({"day": days(3), "v": [3], "note": ["new"]}))
    con = lake.connect([T], native=True)
    read = con.execute(f"SELECT day, v, note FROM {T} ORDER BY day").fetchall()
    assert read == [(D1, 1, None), (D1 + ONE, 2, None), (D1 + 2 * ONE, 3, "new")]
    con.execute(f"SELECT * FROM {T}").fetchall()  # every file of every day, not only the pruned ones


def test_the_native_reader_maps_every_file_by_column_name(lake: Lake) -> None:
    lake.overwrite(T, pa.table({"day": days(1), "v": [1], "w": ["a"]}), partition_by=["day"])
    lake.append(T, pa.table({"w": ["b"], "day": days(2), "v": [2]}))  # same columns, another order in the batch
    con = lake.connect([T], native=True)
    assert con.execute(f"SELECT day, v, w FROM {T} ORDER BY day").fetchall() == [(D1, 1, "a"), (D1 + ONE, 2, "b")]
