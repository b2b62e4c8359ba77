"""Delta tables on a URI (local path, abfss://, az://), written with delta-rs and read through DuckDB.

Every table lives at ``<lake>/<layer>/<name>``. Writes are one Delta commit each, so a crash leaves a table
either before or after a write, never half way; the idempotent modes make a re-run after a crash land the
same rows as one clean run.

A lake on Azure storage is the same tables through delta-rs's object store, with the credentials of the settings'
storage section (``lake.remote``); what only a folder can do (DuckDB's own Parquet reader, a table's inode) stays
with local lakes, each with its remote counterpart here.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import weakref
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import TableNotFoundError

from retreasure.lake import remote
from retreasure.lake.protocol import ensure_readable
from retreasure.lake.sql import first_per_key

LAYERS = ("bronze", "silver", "gold", "quarantine", "ops", "restricted")
# Partition column types DuckDB reads back from Delta's partition paths as they are (a string value is
# URL-encoded in its path: those tables stay Arrow datasets).
_HIVE_TYPES = {pa.date32(): "DATE", pa.int64(): "BIGINT", pa.int32(): "INTEGER"}
# A commit that adds this many files or more is followed by a checkpoint: every later open of the table replays its
# JSON otherwise (a bronze table's year of day files loaded in 30-45 ms, 7-9 ms from a checkpoint; an hourly build
# opens some 15 bronze tables). Such commits are a backfill's, a compaction's or a rebuild's: the checkpoint is once.
CHECKPOINT_FILES = 100
_DATABASE: dict[int, duckdb.DuckDBPyConnection] = {}  # one in-memory DuckDB per process (keyed by pid: forks)
_LOCK = threading.Lock()
_CATALOGS = itertools.count()


def connection() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection of its own for one piece of work (its schemas, views and registered Arrow objects
    unseen by any other), opened in ~1 ms: a cursor on the process's database with a private in-memory catalog
    as its default, dropped with the connection. A new database per connection cost ~30 ms to open and close,
    several times per model run."""
    return _connection()[0]


def _connection() -> tuple[duckdb.DuckDBPyConnection, str]:
    """``connection()`` and the name of its own catalog."""
    with _LOCK:
        database = _DATABASE.get(os.getpid())
        if database is None:
            database = _DATABASE[os.getpid()] = duckdb.connect()
            # Parquet footers read once per process: checks and models read the same files over and over, and a
            # Delta data file never changes once written (a new version writes new files).
            database.execute("SET GLOBAL parquet_metadata_cache = true")
            # DuckDB's cache of file contents would keep every data file a build reads (~0.5 GB of an hourly run at
            # scale 1) for the life of the process; the OS caches local files already.
            database.execute("SET GLOBAL enable_external_file_cache = false")
        con = database.cursor()
        catalog = f"__work{next(_CATALOGS)}"
    con.execute(f"ATTACH ':memory:' AS {catalog}; USE {catalog}")
    weakref.finalize(con, _detach, database, catalog)
    return con, catalog


def _detach(database: duckdb.DuckDBPyConnection, catalog: str) -> None:
    """Drop a closed connection's catalog (its views only: the rows they read live in the lake)."""
    try:
        detaching = database.cursor()
        detaching.execute(f"DETACH DATABASE IF EXISTS {catalog}")
        detaching.close()
    except duckdb.Error:  # the process's database is closing: the catalogs go with it
        pass


@dataclass(frozen=True, order=True)
class TableRef:
    """A table's address inside the lake: ``bronze.shopify_orders`` lives at ``<lake>/bronze/shopify_orders``."""

    layer: str
    name: str

    def __post_init__(self) -> None:
        for part in (self.layer, self.name):
            # Names become path segments and SQL identifiers: keep them boring so neither can be abused.
            if not part or not part.replace("_", "").isalnum() or not part[0].isalpha():
                raise ValueError(f"invalid table name part {part!r}")

    @classmethod
    def parse(cls, dotted: str) -> TableRef:
        layer, _, name = dotted.partition(".")
        return cls(layer, name)

    def __str__(self) -> str:
        return f"{self.layer}.{self.name}"


class Lake:
    """The lakehouse: where tables live, how they are written, and a DuckDB view over them."""

    def __init__(self, uri: str | Path, storage_options: dict[str, str] | None = None) -> None:
        uri = str(uri)
        if "://" not in uri:
            uri = os.path.abspath(uri)
        self.uri = uri.rstrip("/")
        self.storage_options = storage_options or None
        self.is_local = "://" not in self.uri or self.uri.startswith("file://")
        self._snapshots: dict[TableRef, _Snapshot] = {}
        # A lock per table: threads opening different tables (a build's models side by side) do so at once.
        self._table_locks: dict[TableRef, threading.Lock] = {}
        self._table_locks_lock = threading.Lock()
        # The native views of this lake's tables, made once per version of each in a catalog every connection
        # searches after its own (``connect``): a view of a day-partitioned year binds its hundreds of files in
        # ~4 ms, and a build made the same views again for every model run and again for its checks.
        self._views: _SharedViews | None = None

    @classmethod
    def from_settings(cls, settings: object) -> Lake:
        from retreasure.settings import Settings, is_azure_uri

        assert isinstance(settings, Settings)
        if settings.storage.use_emulator and is_azure_uri(settings.lake_uri):
            remote.use_emulator(settings.storage.emulator_url)
        return cls(settings.lake_uri, settings.delta_storage_options())

    # -- addresses -------------------------------------------------------------------------------
    def table_uri(self, ref: TableRef) -> str:
        return f"{self.uri}/{ref.layer}/{ref.name}"

    def log_dir(self, ref: TableRef) -> Path:
        """Where a table of a local lake keeps its Delta log."""
        return Path(self.table_uri(ref).removeprefix("file://")) / "_delta_log"

    def commit_file(self, ref: TableRef, version: int) -> Path:
        """The file of a local table's commit ``version`` (there or not)."""
        return self.log_dir(ref) / f"{version:020d}.json"

    def exists(self, ref: TableRef) -> bool:
        known = self._snapshots.get(ref)
        if known is not None and not self.is_local:
            return True  # opened before, and the platform deletes no table: no round trip
        # Opened before: still there while its first commit is the one it was opened with (one stat, where asking
        # delta-rs took ~0.4 ms, some 500 times an hourly build).
        if known is not None and known.origin is not None and _stamp(self.commit_file(ref, 0)) == known.origin:
            return True
        return DeltaTable.is_deltatable(self.table_uri(ref), storage_options=self.storage_options)

    def delta(self, ref: TableRef) -> DeltaTable:
        """The table at its latest version: the same object while no commit follows (opening one replays its log,
        ~10 ms on local disk, a round trip per log file on remote storage, and a build opened the same tables some
        300 times); brought up to date when one did."""
        return self._snapshot(ref).table

    def version(self, ref: TableRef) -> int | None:
        """The table's current Delta version, None while it does not exist: a look at its log's tail, the table
        object reused (what a reader's copy of the table is kept or renewed by)."""
        try:
            return self._snapshot(ref).table.version()
        except TableNotFoundError:
            return None

    def latest_version(self, ref: TableRef) -> int | None:
        """The table's newest version, None while it does not exist: on local disk told by its log's file names,
        the table not loaded (~25 ms for a bronze table of a year of days), elsewhere ``version``."""
        if not self.is_local:
            return self.version(ref)
        try:
            names = os.listdir(self.log_dir(ref))
        except FileNotFoundError:
            return None
        commits = [int(n[:20]) for n in names if len(n) == 25 and n.endswith(".json") and n[:20].isdigit()]
        return max(commits) if commits else self.version(ref)

    def committed_since(self, ref: TableRef, version: int | None) -> bool | None:
        """Whether ``ref`` has a commit after ``version`` (None: the table did not exist), by one stat of the
        commit file that would come next: True or False on a local lake, None where that takes a round trip
        (ask ``version`` then). Cheap enough to ask on every request of whatever was read at ``version``."""
        if not self.is_local:
            return None
        return self.commit_file(ref, version + 1 if version is not None else 0).exists()

    def _table_lock(self, ref: TableRef) -> threading.Lock:
        with self._table_locks_lock:
            return self._table_locks.setdefault(ref, threading.Lock())

    def _snapshot(self, ref: TableRef) -> _Snapshot:
        if not self.is_local:
            # Opened once and brought up to date in place: one listing of the log's tail per look.
            with self._table_lock(ref):
                known = self._snapshots.get(ref)
                if known is None:
                    known = _Snapshot(DeltaTable(self.table_uri(ref), storage_options=self.storage_options), None)
                    self._snapshots[ref] = known
                else:
                    known.table.update_incremental()
                return known
        with self._table_lock(ref):
            known = self._snapshots.get(ref)
            origin = _stamp(self.commit_file(ref, 0))
            if known is None or origin is None or known.origin != origin:
                # New to this lake object, or the table was deleted (and maybe created again) since.
                known = _Snapshot(DeltaTable(self.table_uri(ref), storage_options=self.storage_options), origin)
            elif self.commit_file(ref, known.table.version() + 1).exists():
                known.table.update_incremental()
                known.datasets.clear()
                known.scans.clear()
            self._snapshots[ref] = known
            return known

    def dataset(self, ref: TableRef) -> pads.Dataset:
        snapshot = self._snapshot(ref)
        version = snapshot.table.version()
        if version not in snapshot.datasets:  # one version kept: a write moves the table object on in place
            ensure_readable(snapshot.table)
            snapshot.datasets = {version: self._open_dataset(ref, snapshot.table)}
        return snapshot.datasets[version]

    def _open_dataset(self, ref: TableRef, table: DeltaTable) -> pads.Dataset:
        if "://" in self.uri:
            return table.to_pyarrow_dataset()
        # On local disk, a plain Parquet dataset over the snapshot's files with partitions parsed from their
        # paths: it opens in milliseconds, where deltalake builds one partition expression per file in Python
        # (a tenth of a second for a day-partitioned year, paid by every model that reads the table).
        schema = pa.schema(table.schema().to_arrow())
        columns = table.metadata().partition_columns
        partitioning = (
            pads.partitioning(pa.schema([schema.field(c) for c in columns]), flavor="hive") if columns else None
        )
        return pads.dataset(
            table.file_uris(),
            schema=schema,
            format="parquet",
            partitioning=partitioning,
            partition_base_dir=self.table_uri(ref),
        )

    def tables(self, layer: str | None = None) -> list[TableRef]:
        """Every table of the lake (of one layer): each folder holding a ``_delta_log``."""
        if not self.is_local:
            return [TableRef(*found) for found in remote.tables(self.uri, self.storage_options, layer)]
        root = Path(self.uri.removeprefix("file://"))
        found = []
        for layer_dir in sorted(root.glob("*")) if root.exists() else []:
            if layer and layer_dir.name != layer:
                continue
            for table_dir in sorted(layer_dir.glob("*/_delta_log")):
                found.append(TableRef(layer_dir.name, table_dir.parent.name))
        return found

    # -- writes ----------------------------------------------------------------------------------
    def append(
        self,
        ref: TableRef,
        data: pa.Table,
        partition_by: Sequence[str] | None = None,
        txns: Sequence[tuple[str, int]] = (),
    ) -> None:
        """Append ``data`` in one commit, with the application transactions ``txns`` (app id, version) recorded in
        the same commit (a stream's offsets: one per topic-partition). With ``data`` empty, the commit records
        only the transactions."""
        commit = (
            CommitProperties(app_transactions=[Transaction(app, version) for app, version in txns]) if txns else None
        )
        exists = self.exists(ref)
        write_deltalake(
            self._target(ref, exists),
            data,
            mode="append",
            partition_by=list(partition_by) if partition_by and not exists else None,
            storage_options=self.storage_options,
            commit_properties=commit,
        )
        self._checkpoint_if_large(ref, data)

    def txn_version(self, ref: TableRef, app_id: str) -> int | None:
        if not self.exists(ref):
            return None
        return self.delta(ref).transaction_version(app_id)

    def append_once(
        self,
        ref: TableRef,
        data: pa.Table,
        app_id: str,
        version: int,
        partition_by: Sequence[str] | None = None,
    ) -> bool:
        """Append unless this app already committed ``version`` or later; True when written.

        delta-rs records the transaction but does not refuse a repeated version, hence the check first.
        """
        stored = self.txn_version(ref, app_id)
        if stored is not None and stored >= version:
            return False
        self.append(ref, data, partition_by, txns=[(app_id, version)])
        return True

    def overwrite(
        self,
        ref: TableRef,
        data: pa.Table | pa.RecordBatchReader,
        predicate: str | None = None,
        partition_by: Sequence[str] | None = None,
        writer_properties: WriterProperties | None = None,
        target_file_size: int | None = None,
    ) -> None:
        """Replace the rows matching ``predicate`` (a partition, say) with ``data``; the whole table without. ``data``
        may be a stream of batches, written as they come; ``target_file_size`` (bytes, about) cuts files by size."""
        exists = self.exists(ref)
        write_deltalake(
            self._target(ref, exists),
            data,
            mode="overwrite",
            predicate=predicate if exists else None,
            partition_by=list(partition_by) if partition_by else None,
            schema_mode=None if predicate and exists else "overwrite",
            storage_options=self.storage_options,
            writer_properties=writer_properties,
            target_file_size=target_file_size,
        )
        self._checkpoint_if_large(ref, data)

    def _checkpoint_if_large(self, ref: TableRef, data: pa.Table | pa.RecordBatchReader) -> None:
        """Write a checkpoint after a commit that added ``CHECKPOINT_FILES`` files or more (its metrics say how
        many; fewer rows cannot make as many files); delta-rs checkpoints by number of commits only (every 100th)."""
        if isinstance(data, pa.Table) and data.num_rows < CHECKPOINT_FILES:
            return
        table = self.delta(ref)
        newest = table.history(1)
        metrics = (newest[0].get("operationMetrics") or {}) if newest else {}
        if int(metrics.get("num_added_files") or 0) >= CHECKPOINT_FILES:
            table.create_checkpoint()

    def _target(self, ref: TableRef, exists: bool) -> str | DeltaTable:
        """What a write goes to: the table as already opened (its log not replayed again), else its URI."""
        return self.delta(ref) if exists else self.table_uri(ref)

    def merge(self, ref: TableRef, data: pa.Table, keys: Sequence[str]) -> dict[str, int]:
        """Upsert on ``keys``: for small dimension tables (a merge rewrites the files it touches)."""
        if not self.exists(ref):
            self.overwrite(ref, data)
            return {"num_target_rows_inserted": data.num_rows}
        on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        return (
            self.delta(ref)
            .merge(data, predicate=on, source_alias="s", target_alias="t")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )

    def insert_new(
        self,
        ref: TableRef,
        data: pa.Table,
        keys: Sequence[str],
        partition_by: str | None = None,
    ) -> int:
        """Append only rows whose ``keys`` are not in the table yet (nor earlier in ``data``).

        The lookup reads just the key columns of the partitions that ``data`` touches, so its cost follows
        the new data, not the table's history. Returns the number of rows appended.
        """
        con = connection()
        key_list = ", ".join(keys)
        # Only the keys go through DuckDB, and the rows kept are taken from ``data`` by position: sorting and
        # copying whole rows (a bronze record's raw text) through the query cost more than the lookup itself.
        incoming = data.select(list(keys)).append_column("__ord", pa.array(range(data.num_rows), pa.int64()))
        con.register("incoming", incoming)
        sql = first_per_key("SELECT * FROM incoming", keys, "__ord")
        if self.exists(ref):
            # Only the touched partitions' files are opened: building a dataset over every file of a
            # day-partitioned table costs more than the whole lookup.
            partitions = None
            if partition_by:
                touched = pc.unique(data.column(partition_by).cast(pa.string())).to_pylist()
                partitions = [(partition_by, "in", touched)]
            con.register("existing", self.delta(ref).to_pyarrow_dataset(file_pruning_predicate=partitions))
            sql = f"SELECT f.* FROM ({sql}) f ANTI JOIN (SELECT {key_list} FROM existing) e USING ({key_list})"
        kept = con.execute(f"SELECT __ord FROM ({sql}) ORDER BY __ord").fetch_arrow_table().column("__ord")
        con.close()
        if len(kept):
            new_rows = data if len(kept) == data.num_rows else data.take(kept)
            self.append(ref, new_rows, [partition_by] if partition_by else None)
        return len(kept)

    # -- reads -----------------------------------------------------------------------------------
    def connect(
        self,
        refs: Iterable[TableRef] | None = None,
        native: bool | Container[TableRef] = False,
        days: Mapping[TableRef, Sequence[tuple[date, date]]] | None = None,
    ) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection where each table is a view named ``layer.name``.

        Tables are read as Arrow datasets, so DuckDB pushes filters and projections into the Parquet scan.
        ``native`` (True, or the tables it applies to): local tables read by DuckDB's own Parquet reader instead,
        two to three times faster over a day-partitioned year of files, the columns in the table's order; their
        types are the files' (the writer's, which are the table's). DuckDB 1.4's reader evaluates a pushed-down
        filter on every row, those other conditions exclude included: a filter over raw bronze reads ``raw`` as
        NULL on malformed rows (``lake/sql.on_good_rows``). A native view is made once per version of its
        table and shared by the lake's connections (``_SharedViews``): a query reads a table as the newest
        connection made since its last commit found it.

        ``days``: tables the caller reads only within these days (date ranges, ends included, of the table's one DATE
        partition column): their native views name only those partitions' files. DuckDB looks up every file a view
        names each time a query binds it (~8 us a file: ~12 ms for a bronze table of three years of days), where a
        window's few files bind in well under a millisecond. Rows outside the days are not read at all: the
        caller's own filter must say the same.
        """
        con, own = _connection()
        refs = list(refs) if refs is not None else self.tables()
        # The layers' schemas of the connection's own come first in its search path: what the caller creates there
        # goes there and hides a shared view of the same name; a shared view is never changed through a connection.
        # One statement for all of it: a connection is opened some 100 times an hourly build.
        layers = sorted({r.layer for r in refs})
        setup = "".join(f"CREATE SCHEMA IF NOT EXISTS {layer};" for layer in layers)
        if layers and native and self.is_local:
            views = self._shared_views().catalog
            path = [f"{own}.main", *(f"{own}.{layer}" for layer in layers), *(f"{views}.{layer}" for layer in layers)]
            setup += f"SET search_path = '{','.join(path)}';"
        if setup:
            con.execute(setup)
        for ref in refs:
            if not self.exists(ref):
                continue
            wanted = native if isinstance(native, bool) else ref in native
            if wanted and self.is_local and days and ref in days:
                scan = self._native_scan(ref)
                files = scan.within(days[ref]) if scan is not None else None
                if scan is not None and files:  # none in the days: the whole view reads as little, as usual
                    con.execute(f"CREATE VIEW {ref.layer}.{ref.name} AS SELECT * FROM {scan.text(files)}")
                    continue
            if wanted and self.is_local and self._shared_views().has(self, ref):
                continue
            scan = f"__{ref.layer}__{ref.name}"
            con.register(scan, self.dataset(ref))
            con.execute(f"CREATE VIEW {ref.layer}.{ref.name} AS SELECT * FROM {scan}")
        return con

    def _shared_views(self) -> _SharedViews:
        with self._table_locks_lock:
            if self._views is None:
                self._views = _SharedViews()
            return self._views

    def _native_scan(self, ref: TableRef) -> _Scan | None:
        """How DuckDB's own reader reads the snapshot's files; None when it could not (no files, a partition column
        of a type the paths do not carry)."""
        snapshot = self._snapshot(ref)
        version = snapshot.table.version()
        if version not in snapshot.scans:
            ensure_readable(snapshot.table)
            snapshot.scans = {version: _native_scan(snapshot.table)}
        return snapshot.scans[version]

    def query(
        self, sql: str, refs: Iterable[TableRef] | None = None, params: dict[str, object] | None = None
    ) -> pa.Table:
        con = self.connect(refs)
        try:
            return con.execute(sql, params).fetch_arrow_table()
        finally:
            con.close()

    def size(self, ref: TableRef) -> int:
        """The bytes of the table's data files, from its Delta log; 0 while it does not exist."""
        if not self.exists(ref):
            return 0
        return int(pc.sum(pa.table(self.delta(ref).get_add_actions(flatten=True)).column("size_bytes")).as_py() or 0)

    def count(self, ref: TableRef) -> int:
        """The table's rows: from the record counts the Delta log keeps per file, without reading a row; by
        counting when a file has none (a writer that kept no statistics)."""
        if not self.exists(ref):
            return 0
        records = pa.table(self.delta(ref).get_add_actions(flatten=True)).column("num_records")
        if records.null_count == 0:
            return int(pc.sum(records).as_py() or 0)
        return int(self.query(f"SELECT count(*) AS n FROM {ref}", [ref]).column("n")[0].as_py())


@dataclass
class _Snapshot:
    """A table as last opened, and what was derived from it per version (datasets, scans): both reused until
    the next commit. ``origin`` tells a table deleted and created again apart (its first commit's file)."""

    table: DeltaTable
    origin: tuple[int, int] | None
    datasets: dict[int, pads.Dataset] = field(default_factory=dict)
    scans: dict[int, _Scan | None] = field(default_factory=dict)


@dataclass
class _Scan:
    """``read_parquet`` over one version of a table: ``whole`` over all of its files, ``text(files)`` over some."""

    files: list[str]
    columns: str  # the table's columns in its schema's order (hive partition columns would come last)
    options: str
    day_column: str | None  # the table's partition column when it is its only one and a DATE
    _days: list[date | None] | None = None  # each file's day, read from its path when first asked

    def __post_init__(self) -> None:
        self.whole = self.text(self.files)

    def text(self, files: Sequence[str]) -> str:
        paths = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        return f"(SELECT {self.columns} FROM read_parquet([{paths}]{self.options}))"

    def within(self, days: Sequence[tuple[date, date]]) -> list[str] | None:
        """The files of the partitions in ``days``; None when the table has no day partitions to narrow by.
        A file whose day its path does not tell (a NULL partition) is kept: a filter on the day drops its rows."""
        if self.day_column is None:
            return None
        if self._days is None:
            pattern = re.compile(rf"/{re.escape(self.day_column)}=(\d{{4}}-\d{{2}}-\d{{2}})/")
            found = [pattern.search(f) for f in self.files]
            self._days = [date.fromisoformat(m.group(1)) if m else None for m in found]
        return [
            f
            for f, day in zip(self.files, self._days, strict=True)
            if day is None or any(start <= day <= end for start, end in days)
        ]


class _SharedViews:
    """A catalog of the process's database holding one lake's native views, each of the table's version it was
    made for; dropped with the lake object."""

    def __init__(self) -> None:
        self.catalog = f"__lake{next(_CATALOGS)}"
        self.made: dict[TableRef, str] = {}  # the scan each view was made of
        # One at a time: DuckDB refuses two changes to one catalog at once (a write-write conflict), and a view is
        # made once per version of its table.
        self._lock = threading.Lock()
        con = connection()
        con.execute(f"ATTACH ':memory:' AS {self.catalog}")
        for layer in LAYERS:
            con.execute(f"CREATE SCHEMA {self.catalog}.{layer}")
        con.close()
        weakref.finalize(self, _detach, _DATABASE[os.getpid()], self.catalog)

    def has(self, lake: Lake, ref: TableRef) -> bool:
        """Whether the catalog holds a view of ``ref`` at its current version (made now if need be); False when
        DuckDB's reader cannot read it (``Lake._native_scan``)."""
        with self._lock:
            scan = lake._native_scan(ref)
            if scan is None:
                return False
            if self.made.get(ref) != scan.whole:  # its files named in the scan: a new version, a new table, a new view
                con = connection()
                try:
                    con.execute(f"CREATE OR REPLACE VIEW {self.catalog}.{ref} AS SELECT * FROM {scan.whole}")
                finally:
                    con.close()
                self.made[ref] = scan.whole
            return True


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def _native_scan(table: DeltaTable) -> _Scan | None:
    """``read_parquet`` over the snapshot's files, partition values typed as the table declares them; None when
    DuckDB could not read it so (no files, a partition column of a type the paths do not carry)."""
    files = [f.removeprefix("file://") for f in table.file_uris()]
    schema = pa.schema(table.schema().to_arrow())
    types = {c: _HIVE_TYPES.get(schema.field(c).type) for c in table.metadata().partition_columns}
    if not files or None in types.values():
        return None
    hive = ", ".join(f"'{c}': {t}" for c, t in types.items())
    options = f", hive_partitioning = true, hive_types = {{{hive}}}" if types else ", hive_partitioning = false"
    if not _files_share_schema(table, files, [n for n in schema.names if n not in types]):
        # A file written before a column was added lacks it: NULL, by name. Only then, for it opens every file of
        # the table when a query is planned (a tenth of a second over a day-partitioned year, growing with it).
        options += ", union_by_name = true"
    # The table's columns in its schema's order (hive partition columns would come last).
    columns = ", ".join('"' + name.replace('"', '""') + '"' for name in schema.names)
    day_column = next(iter(types)) if list(types.values()) == ["DATE"] else None
    return _Scan(files, columns, options, day_column)


def _files_share_schema(table: DeltaTable, files: list[str], columns: list[str]) -> bool:
    """Whether every file holds each of ``columns`` (the table's, less its partition columns), told by its oldest
    file. A write here changes a table's schema only by replacing all of its files, so the files after the oldest
    hold what it holds; a column added to the log alone (another writer's ALTER TABLE) is missing from the oldest.
    Without ``union_by_name`` DuckDB maps each file's columns by name and refuses, with a clear error, a file that
    lacks one: nothing is read wrong if the rule above were broken."""
    import pyarrow.parquet as pq

    added = pa.table(table.get_add_actions(flatten=False))
    times = added.column("modification_time")
    name = os.path.basename(str(added.column("path")[pc.index(times, pc.min(times)).as_py()].as_py()))
    path = next(f for f in files if os.path.basename(f) == name).removeprefix("file://")
    return set(columns) <= set(pq.read_schema(path).names)
