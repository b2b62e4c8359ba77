"""The ingest log: one row per source entity per run, the place to ask "what landed, and what failed?".

A row is written when an entity's run starts (status ``running``, with the process id and host that run it) and
completed in place when it ends (``success``, ``partial``, ``failed``). A process killed in between leaves its
row ``running``; the next ingest on the same host finds that process gone and marks the row ``interrupted``, so a
killed run stays visible instead of vanishing. Every write is one Delta commit, retried when another ingest
committed to the log at the same moment (two ingests of different sources may run at once).
"""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from deltalake.exceptions import CommitFailedError
from deltalake.schema import Field, PrimitiveType

from retreasure.exitcodes import ExitCode
from retreasure.lake.store import Lake, TableRef

INGEST_LOG = TableRef("ops", "ingest_log")
RUNNING, SUCCESS, PARTIAL, FAILED, INTERRUPTED = "running", "success", "partial", "failed", "interrupted"
# Each source entity's latest run (the newest start): what "did it land?" is answered from.
LATEST_RUNS_SQL = (
    f"SELECT * FROM {INGEST_LOG} QUALIFY row_number() OVER (PARTITION BY source, entity ORDER BY started_at DESC) = 1"
)

SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("source", pa.string()),
        ("entity", pa.string()),
        ("bronze_table", pa.string()),
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("window_end", pa.timestamp("us", tz="UTC")),
        ("status", pa.string()),  # running | success | partial | failed | interrupted
        ("records", pa.int64()),  # received from the source
        ("new_records", pa.int64()),  # appended to bronze (the rest were already there)
        ("malformed", pa.int64()),  # kept raw in bronze and copied to quarantine
        ("bytes", pa.int64()),
        ("requests", pa.int64()),
        ("retries", pa.int64()),
        ("files", pa.int64()),
        ("duration_s", pa.float64()),
        ("error", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        # Added later (a log written before has them NULL):
        ("warnings", pa.string()),  # what landed but deserves a look (an empty or header-only file), "; "-joined
        ("last_retry", pa.string()),  # the cause of the last retried request, when there were retries
        ("pid", pa.int64()),  # the process that ran it, to tell a live run from a dead one
        ("host", pa.string()),
    ]
)
_ADDED = {"warnings": "string", "last_retry": "string", "pid": "long", "host": "string"}
_COMMIT_ATTEMPTS = 12


@dataclass
class IngestRun:
    run_id: str
    source: str
    entity: str
    bronze_table: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    status: str = RUNNING
    records: int = 0
    new_records: int = 0
    malformed: int = 0
    bytes: int = 0
    requests: int = 0
    retries: int = 0
    files: int = 0
    duration_s: float = 0.0
    error: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    warnings: list[str] = field(default_factory=list)
    last_retry: str | None = None
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)

    def row(self) -> dict[str, object]:
        row = asdict(self)
        row["warnings"] = "; ".join(summarise_warnings(self.warnings, examples=20))[:4000] or None
        return row


def summarise_warnings(warnings: list[str], examples: int = 3) -> list[str]:
    """Warnings of the same kind ("<file>: <what>") as one line naming a few of the files: a day of hourly
    files without a sale is a few hundred header-only files, not a few hundred lines."""
    files_by_kind: dict[str, list[str]] = {}
    for warning in warnings:
        where, _, what = warning.rpartition(": ")
        files_by_kind.setdefault(what, []).append(where)
    lines = []
    for what, files in files_by_kind.items():
        if len(files) == 1:
            lines.append(f"{files[0]}: {what}" if files[0] else what)
            continue
        named = ", ".join(files[:examples]) + (f" and {len(files) - examples:,} more" if len(files) > examples else "")
        lines.append(f"{len(files):,} files, {what}: {named}")
    return lines


def start(lake: Lake, run: IngestRun) -> None:
    """The row that says this entity's run began (status ``running``)."""
    _ensure_columns(lake)
    _committed(lambda: lake.append(INGEST_LOG, _table([run])))


def finish(lake: Lake, run: IngestRun) -> None:
    """Replace the run's ``running`` row with its outcome, in one commit."""
    _ensure_columns(lake)
    _committed(lambda: lake.overwrite(INGEST_LOG, _table([run]), predicate=_identity(run)))


def record(lake: Lake, runs: list[IngestRun]) -> None:
    """Append finished runs as they are (a log written in one go, e.g. by a backfill of the log itself)."""
    if runs:
        _ensure_columns(lake)
        _committed(lambda: lake.append(INGEST_LOG, _table(runs)))


def close_interrupted(lake: Lake, alive: Callable[[int, datetime], bool] | None = None) -> list[IngestRun]:
    """Mark ``interrupted`` every ``running`` row of this host whose process is gone; returns those runs.

    Only this host's rows are judged: a process id means nothing elsewhere. A live process (another ingest
    running now) keeps its rows as they are."""
    if not lake.exists(INGEST_LOG):
        return []
    _ensure_columns(lake)
    host = socket.gethostname()
    rows = lake.query(
        f"SELECT * FROM {INGEST_LOG} WHERE status = '{RUNNING}' AND host = $host AND pid IS NOT NULL",
        [INGEST_LOG],
        {"host": host},
    ).to_pylist()
    is_alive = alive or process_alive
    dead = [_from_row(r) for r in rows if not is_alive(r["pid"], r["started_at"])]
    for run in dead:
        run.status = INTERRUPTED
        run.error = (
            f"the process that ran it (pid {run.pid} on {run.host}) ended before the run completed "
            "(killed or crashed): what it landed is in bronze, the next run takes the rest"
        )
        finish(lake, run)
    return dead


def process_alive(pid: int, started_at: datetime) -> bool:
    """Whether the process ``pid`` of this host is the one that started a run at ``started_at``. A process id
    is reused once its process is gone: a process of that id that began after the run began is another one."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and maybe not ours, but not ours to judge
        return True
    began = _process_start(pid)
    return began is None or began <= started_at.timestamp() + 2  # /proc's clock is coarse (whole seconds)


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), where /proc tells it (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
    except (OSError, IndexError, StopIteration):
        return None
    return int(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def watermark(lake: Lake, source: str, entity: str) -> datetime | None:
    """End of the last window that landed completely: where the next incremental run starts."""
    if not lake.exists(INGEST_LOG):
        return None
    result = lake.query(
        f"SELECT max(window_end) AS w FROM {INGEST_LOG} "
        f"WHERE source = $source AND entity = $entity AND status = '{SUCCESS}'",
        [INGEST_LOG],
        {"source": source, "entity": entity},
    )
    return result.column("w")[0].as_py()


def exit_code(runs: Iterable[IngestRun]) -> ExitCode:
    """FAILED when an entity failed, PARTIAL when a file was refused or quarantined whole, else OK (records
    quarantined row by row, and warnings such as an empty file, are normal operation)."""
    statuses = {r.status for r in runs}
    if FAILED in statuses or INTERRUPTED in statuses:
        return ExitCode.FAILED
    if PARTIAL in statuses:
        return ExitCode.PARTIAL
    return ExitCode.OK


def _table(runs: list[IngestRun]) -> pa.Table:
    return pa.Table.from_pylist([r.row() for r in runs], schema=SCHEMA)


def _identity(run: IngestRun) -> str:
    def quoted(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    return f"run_id = {quoted(run.run_id)} AND source = {quoted(run.source)} AND entity = {quoted(run.entity)}"


def _from_row(row: dict[str, object]) -> IngestRun:
    values = {k: v for k, v in row.items() if k in IngestRun.__dataclass_fields__}
    values["warnings"] = [str(row["warnings"])] if row.get("warnings") else []
    return IngestRun(**values)  # type: ignore[arg-type]


def _ensure_columns(lake: Lake) -> None:
    """Give a log written before the columns of a live run was possible (pid, host...) those columns."""
    if not lake.exists(INGEST_LOG):
        return
    have = set(lake.delta(INGEST_LOG).schema().to_arrow().names)
    missing = [Field(name, PrimitiveType(kind), nullable=True) for name, kind in _ADDED.items() if name not in have]
    if missing:
        try:
            lake.delta(INGEST_LOG).alter.add_columns(missing)
        except Exception:  # another process added them at the same moment
            if set(_ADDED) - set(lake.delta(INGEST_LOG).schema().to_arrow().names):
                raise


def _committed(write: Callable[[], None]) -> None:
    """Run a write of the log, again after a short random wait when another process committed a conflicting
    change first (delta-rs refuses the later of two commits that touched the same rows' files)."""
    for attempt in range(_COMMIT_ATTEMPTS):
        try:
            write()
            return
        except CommitFailedError:
            if attempt == _COMMIT_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0, 0.02 * 2 ** min(attempt, 6)))
