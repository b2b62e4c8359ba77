"""The one read layer of serving: the API, the dashboards and the CLI's KPI summary read the lake through it.

Each table a question names is held as an in-memory copy of one Delta version, all of them in one DuckDB database
per lake, shared by every reader of the process. Before each read the versions of the tables it names are asked
of the lake (``Lake.version``: a look at the log's tail); a table whose version moved is copied again, in place of
its old copy, while reads already running finish on the old one. So a build's new commit is seen by the very next
read, and nothing else is ever invalidated: there is no clock.

Whoever keeps an answer computed from the lake (the API's response cache, ``serving.api.cache``) asks which
tables, at which versions, went into it: ``recording()`` collects the versions of every table read inside it,
on this thread or on the threads the work is handed to (the versions travel in a context variable).

Opening a Delta table's files costs far more than the questions asked of it (see docs/benchmarks.md, API); the
copies are what make a request or a dashboard rerun cheap. Queries get a cursor on the shared database, far
cheaper than a database of their own.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import duckdb
import pyarrow as pa

from retreasure.lake.store import Lake, TableRef


class NotBuilt(LookupError):
    """A table a question needs is not in the lake yet (the build has not produced it)."""

    def __init__(self, what: TableRef | str) -> None:
        super().__init__(f"{what} is not built yet: run `retreasure build` to produce it.")


# What a table read twice at two versions within one recording is noted as: it matches no version, so an answer
# computed across a commit is never taken for one of either version.
MIXED = -1
Versions = dict[TableRef, int | None]
_recording: ContextVar[Versions | None] = ContextVar("recording", default=None)


@contextmanager
def recording() -> Iterator[Versions]:
    """The versions of the tables read inside (None for a table that did not exist), filled in as they are read.

    A version is the one seen before the table's copy was checked: the copy may be newer, never older, so an answer
    kept under these versions is renewed no later than the next commit.
    """
    found: Versions = {}
    token = _recording.set(found)
    try:
        yield found
    finally:
        _recording.reset(token)


def _note(versions: Versions) -> None:
    found = _recording.get()
    if found is None:
        return
    for ref, version in versions.items():
        found[ref] = version if found.get(ref, version) == version else MIXED


class _Copies:
    """The copies of every lake read in this process: one DuckDB database per lake, a table per lake table."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._databases: dict[str, duckdb.DuckDBPyConnection] = {}
        self._versions: dict[str, dict[TableRef, int | None]] = {}  # None: the table did not exist

    def cursor(self, lake: Lake, refs: list[TableRef]) -> duckdb.DuckDBPyConnection:
        with self._lock:
            database = self._databases.get(lake.uri)
            if database is None:
                database = self._databases[lake.uri] = duckdb.connect()
                self._versions[lake.uri] = {}
            known = self._versions[lake.uri]
            versions = {ref: lake.version(ref) for ref in refs}
            _note(versions)
            stale = {ref: v for ref, v in versions.items() if ref not in known or known[ref] != v}
            if stale:
                # Through DuckDB: delta-rs's own Arrow readers, called twice in a process, made the interpreter
                # abort at exit.
                copies = {ref: lake.query(f"SELECT * FROM {ref}", [ref]) for ref, v in stale.items() if v is not None}
                # One transaction: a query sees every table of one moment, and a query already running finishes
                # on the copies it started with.
                database.execute("BEGIN TRANSACTION")
                for ref in stale:
                    database.execute(f"CREATE SCHEMA IF NOT EXISTS {ref.layer}")
                    if ref not in copies:
                        database.execute(f"DROP TABLE IF EXISTS {ref}")
                        continue
                    # Copied into the database: a registered Arrow object is visible to its own connection only,
                    # not to the cursors the queries run on.
                    database.register("copy", copies[ref])
                    database.execute(f"CREATE OR REPLACE TABLE {ref} AS SELECT * FROM copy")
                    database.unregister("copy")
                database.execute("COMMIT")
                known.update(stale)
            return database.cursor()


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
