"""The lake's write modes on real Delta tables, read back through DuckDB."""

from __future__ import annotations

import os
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


def test_native_views_follow_each_commit_and_a_table_made_again(lake: Lake) -> None:
    lake.overwrite(T, pa.table({"day": days(1), "v": [1]}), partition_by=["day"])
    first = lake.connect([T], native=True)
    assert first.execute(f"SELECT sum(v) FROM {T}").fetchone() == (1,)
    lake.append(T, pa.table({"day": days(2), "v": [2]}))
    assert lake.connect([T], native=True).execute(f"SELECT sum(v) FROM {T}").fetchone() == (3,)
    lake.overwrite(T, pa.table({"day": days(5), "v": [7]}))  # whole table replaced: none of the old files
    assert lake.connect([T], native=True).execute(f"SELECT day, v FROM {T}").fetchall() == [(D1 + 4 * ONE, 7)]
    import shutil

    shutil.rmtree(lake.table_uri(T))  # deleted and made again: its log starts over at version 0
    lake.overwrite(T, pa.table({"day": days(9), "v": [9]}), partition_by=["day"])
    assert lake.connect([T], native=True).execute(f"SELECT day, v FROM {T}").fetchall() == [(D1 + 8 * ONE, 9)]


def test_a_view_made_on_a_connection_hides_the_lakes_own_and_leaves_it_alone(lake: Lake) -> None:
    lake.overwrite(T, pa.table({"day": days(1), "v": [1]}), partition_by=["day"])
    mine = lake.connect([T], native=True)
    mine.register("__other", pa.table({"v": [40, 2]}))
    mine.execute(f"CREATE SCHEMA IF NOT EXISTS {T.layer}")
    mine.execute(f"CREATE OR REPLACE VIEW {T} AS SELECT * FROM __other")
    assert mine.execute(f"SELECT sum(v) FROM {T}").fetchone() == (42,)
    assert lake.connect([T], native=True).execute(f"SELECT sum(v) FROM {T}").fetchone() == (1,)


def test_two_lakes_in_one_process_read_their_own_tables(lake: Lake, tmp_path) -> None:
    other = Lake(tmp_path / "other")
    lake.overwrite(T, pa.table({"day": days(1), "v": [1]}), partition_by=["day"])
    other.overwrite(T, pa.table({"day": days(1), "v": [2]}), partition_by=["day"])
    assert lake.connect([T], native=True).execute(f"SELECT v FROM {T}").fetchall() == [(1,)]
    assert other.connect([T], native=True).execute(f"SELECT v FROM {T}").fetchall() == [(2,)]


def test_connections_made_side_by_side_each_read_the_tables(lake: Lake) -> None:
    from concurrent.futures import ThreadPoolExecutor

    refs = [TableRef("silver", f"t{n}") for n in range(8)]
    for n, ref in enumerate(refs):
        lake.overwrite(ref, pa.table({"day": days(1, 2), "v": [n, n]}), partition_by=["day"])

    def total(n: int) -> int:
        con = lake.connect(refs, native=True)  # every thread makes or finds the same views at once
        return con.execute(f"SELECT sum(v) FROM {refs[n % 8]}").fetchone()[0]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(total, range(32))) == [2 * (n % 8) for n in range(32)]


def test_a_connection_narrowed_to_some_days_names_only_their_files(lake: Lake) -> None:
    lake.overwrite(T, pa.table({"day": days(1, 2, 3, 4), "v": [1, 2, 3, 4]}), partition_by=["day"])
    lake.append(T, pa.table({"day": days(2), "v": [20]}))
    window = [(D1 + ONE, D1 + 2 * ONE), (D1 + 3 * ONE, D1 + 3 * ONE)]
    narrowed = lake.connect([T], native=True, days={T: window})
    assert narrowed.execute(f"SELECT day, sum(v) FROM {T} GROUP BY day ORDER BY day").fetchall() == [
        (D1 + ONE, 22),
        (D1 + 2 * ONE, 3),
        (D1 + 3 * ONE, 4),
    ]
    # The first day's file is not named at all: gone from disk, the narrowed read still binds; the whole one fails.
    import duckdb

    (first,) = [f for f in lake.delta(T).file_uris() if "day=2025-01-01" in f]
    os.remove(first.removeprefix("file://"))
    narrowed = lake.connect([T], native=True, days={T: window})
    assert narrowed.execute(f"SELECT count(*) FROM {T}").fetchone() == (4,)
    with pytest.raises(duckdb.IOException):
        lake.connect([T], native=True).execute(f"SELECT count(*) FROM {T}").fetchone()
    # Days with no file: the whole table's view, which the caller's own filter narrows as before.
    later = [(D1 + 30 * ONE, D1 + 31 * ONE)]
    with pytest.raises(duckdb.IOException):
        lake.connect([T], native=True, days={T: later}).execute(f"SELECT count(*) FROM {T}").fetchone()


def test_a_table_without_day_partitions_is_read_whole_whatever_the_days(lake: Lake) -> None:
    lake.overwrite(T, pa.table({"day": days(1, 2), "v": [1, 2]}))
    con = lake.connect([T], native=True, days={T: [(D1, D1)]})
    assert con.execute(f"SELECT sum(v) FROM {T}").fetchone() == (3,)


def test_a_commit_of_many_files_is_followed_by_a_checkpoint_and_a_small_one_is_not(lake: Lake) -> None:
    from retreasure.lake.store import CHECKPOINT_FILES

    checkpoint = lake.log_dir(T) / "_last_checkpoint"
    lake.append(T, pa.table({"day": days(1, 2), "v": [1, 2]}), partition_by=["day"])  # two files
    assert not checkpoint.exists()
    backfill = days(*range(3, 3 + CHECKPOINT_FILES))  # a file per day
    lake.append(T, pa.table({"day": backfill, "v": list(range(len(backfill)))}), partition_by=["day"])
    assert checkpoint.exists()
    at = checkpoint.read_text()
    fewer = days(*range(200, 200 + CHECKPOINT_FILES - 1))
    lake.append(T, pa.table({"day": fewer, "v": [0] * len(fewer)}), partition_by=["day"])
    assert checkpoint.read_text() == at  # 99 files: replayed from JSON, as delta-rs's own interval has it
    reopened = Lake(lake.uri)  # opened from the checkpoint and the commit after it: every row there
    assert reopened.count(T) == 2 + CHECKPOINT_FILES + CHECKPOINT_FILES - 1
    assert rows(reopened)[:2] == [{"day": D1, "v": 1}, {"day": D1 + ONE, "v": 2}]
