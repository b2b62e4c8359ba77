"""The one read layer of serving: the API, the dashboards and the CLI's KPI summary read the lake through it.

Each table a question names is held as an in-memory copy of one Delta version, all of them in one DuckDB database
per lake, shared by every reader of the process. Before each read the versions of the tables it names are asked
of the lake (``Lake.version``: a look at the log's tail); a table whose version moved is copied again into a new
database, while reads already running finish on the old one. So a build's new commit is seen by the very next
read, and nothing else is ever invalidated: there is no clock and no other cache.

Opening a Delta table's files costs far more than the questions asked of it (see docs/benchmarks.md, API); the
copies are what make a request or a dashboard rerun cheap. Queries get a cursor on the shared database, far
cheaper than a database of their own.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from retreasure.lake.store import Lake, TableRef


class NotBuilt(LookupError):
    """A table a question needs is not in the lake yet (the build has not produced it)."""

    def __init__(self, what: TableRef | str) -> None:
        super().__init__(f"{what} is not built yet: run `retreasure build` to produce it.")


@dataclass
class _Generation:
    """One DuckDB database holding a copy of each table, and the Delta versions the copies were made of."""

    con: duckdb.DuckDBPyConnection
    versions: dict[TableRef, int | None]  # None: the table did not exist
    tables: dict[TableRef, pa.Table]


class _Copies:
    """The copies of every lake read in this process, one generation per lake."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generations: dict[str, _Generation] = {}

    def cursor(self, lake: Lake, refs: list[TableRef]) -> duckdb.DuckDBPyConnection:
        with self._lock:
            old = self._generations.get(lake.uri)
            versions = {ref: lake.version(ref) for ref in refs}
            known = old.versions if old else {}
            stale = [ref for ref, version in versions.items() if ref not in known or known[ref] != version]
            if old is not None and not stale:
                return old.con.cursor()
            tables = {ref: t for ref, t in old.tables.items() if ref not in stale} if old else {}
            for ref in stale:
                tables.pop(ref, None)
                if versions[ref] is not None:
                    # Through DuckDB: delta-rs's own Arrow readers, called twice in a process, made the
                    # interpreter abort at exit.
                    tables[ref] = lake.query(f"SELECT * FROM {ref}", [ref])
            con = duckdb.connect()
            for layer in sorted({ref.layer for ref in tables}):
                con.execute(f"CREATE SCHEMA {layer}")
            for ref, data in tables.items():
                # Copied into the database: a registered Arrow object is visible to its own connection only,
                # not to the cursors the queries run on.
                con.register("copy", data)
                con.execute(f"CREATE TABLE {ref} AS SELECT * FROM copy")
                con.unregister("copy")
            self._generations[lake.uri] = _Generation(con, {**known, **versions}, tables)
            return con.cursor()


_copies = _Copies()
_MISSING = re.compile(r"Table with name (\w+) does not exist")


def table(lake: Lake, sql: str, refs: list[TableRef], params: dict[str, object] | None = None) -> pa.Table:
    """``sql`` over the current versions of ``refs`` (named ``layer.name``), as Arrow; NotBuilt when it reads a
    table the lake does not have yet."""
    cursor = _copies.cursor(lake, refs)
    try:
        return cursor.execute(sql, params).fetch_arrow_table()
    except duckdb.CatalogException as error:
        named = _MISSING.search(str(error))
        missing = [ref for ref in refs if named and ref.name == named.group(1) and lake.version(ref) is None]
        what = missing[0] if missing else f"A table this needs ({named.group(1) if named else 'unknown'})"
        raise NotBuilt(what) from error
    finally:
        cursor.close()


def rows(lake: Lake, sql: str, refs: list[TableRef], params: dict[str, object] | None = None) -> list[dict[str, Any]]:
    """``sql`` over the current versions of ``refs``, as plain rows (dicts of Python values)."""
    return table(lake, sql, refs, params).to_pylist()


def built(lake: Lake, refs: list[TableRef]) -> set[TableRef]:
    """Which of ``refs`` the lake has (as the copies know them: no second look at the lake)."""
    cursor = _copies.cursor(lake, refs)
    try:
        names = {name for (name,) in cursor.execute(_BUILT_SQL).fetchall()}
    finally:
        cursor.close()
    return {ref for ref in refs if str(ref) in names}


_BUILT_SQL = "SELECT table_schema || '.' || table_name AS name FROM information_schema.tables"
