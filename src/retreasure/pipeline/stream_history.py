"""The stream in the Dagster UI: what `retreasure stream` lands shows in the history of the bronze assets it feeds
(``bronze.web_clickstream``, ``bronze.web_transactions``), beside the model runs of its micro-builds.

Every few seconds the consumer writes its batches' figures to ``ops.stream_batches``; the same rows are handed
here and, every ``OBSERVE_EVERY_S`` and when the stream stops, summed per table into one asset observation
(batches, messages, new rows, duplicates, malformed, bytes, consumer lag, produce-to-commit latency, the table's
Delta version) and one evaluation of the table's ``stream_lag`` check. An observation per interval rather than
per batch: a batch lands every quarter second at full speed, and each event costs the instance ~20 ms to store.

The checks ``stream_lag`` (the newest batch is at most ``LAG_LIMIT`` messages behind its partitions' ends) and
``stream_freshness`` (the newest batch committed at most ``FRESHNESS_LIMIT_S`` ago) are also Dagster asset checks
of those assets, run from the UI or a job against ``ops.stream_batches``; they warn, never block.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from retreasure.engine.build import Build
from retreasure.engine.models import Model
from retreasure.lake.store import Lake, TableRef
from retreasure.log import get_logger
from retreasure.pipeline.assets import asset_key
from retreasure.pipeline.history import _build_reported, open_instance
from retreasure.pipeline.resources import RetreasureResource
from retreasure.redact import redact
from retreasure.settings import StreamingSettings
from retreasure.streaming.microbuild import BuildFn

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

log = get_logger("pipeline")
STREAM_BATCHES = TableRef("ops", "stream_batches")
OBSERVE_EVERY_S = 30.0
LAG_LIMIT = 10_000  # messages: two full micro-batches behind
FRESHNESS_LIMIT_S = 300.0
LAG_CHECK, FRESHNESS_CHECK = "stream_lag", "stream_freshness"
STREAM_CHECKS_JOB = "stream_checks"
SUMMED = ("messages", "new_rows", "duplicates", "malformed", "quarantined", "already_landed", "bytes")


class SharedInstance:
    """The Dagster instance the UI reads, opened on first use and shared by the stream's threads (opening one costs
    seconds; the stream reports every few), used by one thread at a time (its storage is SQLite on a laptop)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._instance: dg.DagsterInstance | None = None
        self._lock = threading.RLock()

    @contextmanager
    def using(self) -> Iterator[dg.DagsterInstance]:
        with self._lock:
            if self._instance is None:
                self._instance = open_instance(self.home)
            yield self._instance

    def dispose(self) -> None:
        with self._lock:
            if self._instance is not None:
                self._instance.dispose()
                self._instance = None


class StreamHistory:
    """What `retreasure stream` tells Dagster: its micro-builds' model runs and its batches' figures."""

    def __init__(self, home: Path) -> None:
        self.instance = SharedInstance(home)

    def build_fn(self, models: dict[TableRef, Model]) -> BuildFn:
        """The micro-build: an incremental build of what the given bronze tables feed, each model run reported."""

        def build(lake: Lake, tables: Iterable[TableRef]) -> Build:
            with self.instance.using() as instance:
                return _build_reported(instance, lake, models, incremental=True, only_from=list(tables))

        return build

    def observer(self, every_s: float = OBSERVE_EVERY_S, lag_limit: int = LAG_LIMIT) -> StreamObservations:
        return StreamObservations(self.instance, every_s, lag_limit)

    def close(self) -> None:
        self.instance.dispose()


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, object]:
    """The figures of one table's batches (rows of ``ops.stream_batches``, in landing order) as one observation's
    metadata: sums, the newest lag and the largest, the median of the batches' p50 latencies and the largest."""
    figures: dict[str, object] = {"batches": len(rows)}
    figures |= {name.replace("_", " "): sum(int(r[name] or 0) for r in rows) for name in SUMMED}
    lags = [r["lag"] for r in rows if r["lag"] is not None]
    if rows[-1]["lag"] is not None:
        figures["lag"] = int(rows[-1]["lag"])
    if lags:
        figures["max lag"] = int(max(lags))
    p50s = [float(r["latency_p50_ms"]) for r in rows if r["latency_p50_ms"] is not None]
    if p50s:
        figures["latency p50 ms"] = round(statistics.median(p50s), 1)
        figures["latency max ms"] = round(
            max(float(r["latency_max_ms"]) for r in rows if r["latency_max_ms"] is not None), 1
        )
    versions = [int(r["table_version"]) for r in rows if r["table_version"] is not None]
    if versions:
        figures["table version"] = max(versions)
    spans: dict[int, tuple[int, int]] = {}
    for row in rows:
        for part in (row["offsets"] or "").split():
            partition, _, span = part.partition(":")
            first, _, last = span.partition("-")
            known = spans.get(int(partition))
            spans[int(partition)] = (
                (int(first), int(last)) if known is None else (min(known[0], int(first)), max(known[1], int(last)))
            )
    figures["offsets"] = " ".join(f"{p}:{a}-{b}" for p, (a, b) in sorted(spans.items()))
    figures["first batch"], figures["last batch"] = rows[0]["batch_id"], rows[-1]["batch_id"]
    committed = rows[-1]["committed_at"]
    if isinstance(committed, datetime):
        figures["committed at"] = committed.isoformat()
    return figures


def lag_evaluation(
    table: TableRef, lag: int | None, limit: int, metadata: dict[str, object]
) -> dg.AssetCheckEvaluation:
    passed = lag is not None and lag <= limit
    return dg.AssetCheckEvaluation(
        asset_key=asset_key(table),
        check_name=LAG_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"lag": -1 if lag is None else lag, "limit": limit} | metadata,
        description=f"the stream is at most {limit:,} messages behind",
    )


class StreamObservations:
    """Gathers the rows the consumer writes to ``ops.stream_batches`` (``batches``) and reports them to Dagster
    every ``every_s`` seconds (``start``) and once more on ``stop``."""

    def __init__(self, instance: SharedInstance, every_s: float = OBSERVE_EVERY_S, lag_limit: int = LAG_LIMIT) -> None:
        self.instance = instance
        self.every_s = every_s
        self.lag_limit = lag_limit
        self.reported = 0  # observations made
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def batches(self, rows: Sequence[dict[str, Any]]) -> None:
        """The consumer's hook: rows just written to ``ops.stream_batches`` (called on the landing's thread)."""
        with self._lock:
            self._rows.extend(rows)

    def report(self) -> list[dg.AssetObservation]:
        """One observation and one lag evaluation per table of the rows gathered since the last report."""
        with self._lock:
            rows, self._rows = self._rows, []
        by_table: dict[str, list[dict[str, Any]]] = {}
        for row in sorted(rows, key=lambda r: r["batch_id"]):
            by_table.setdefault(row["table_name"], []).append(row)
        made = []
        for name, table_rows in sorted(by_table.items()):
            table = TableRef.parse(name)
            figures = summarise(table_rows)
            observation = dg.AssetObservation(asset_key(table), metadata=figures)
            evaluation = lag_evaluation(
                table, table_rows[-1]["lag"], self.lag_limit, {"last batch": figures["last batch"]}
            )
            try:
                with self.instance.using() as instance:
                    instance.report_runless_asset_event(observation)
                    instance.report_runless_asset_event(evaluation)
            except Exception as exc:  # the figures are in ops.stream_batches all the same: the stream goes on
                log.warning("stream figures not reported", extra={"error": redact(f"{type(exc).__name__}: {exc}")})
                continue
            made.append(observation)
            log.info("stream figures reported", extra={"table": name} | figures)
        self.reported += len(made)
        return made

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._tick, name="stream-observations", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        while not self._stopping.wait(self.every_s):
            self.report()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.report()


# -- the checks, as Dagster runs them ---------------------------------------------------------------------------
def newest_batch(lake: Lake, table: TableRef) -> dict[str, Any] | None:
    """The newest row of ``ops.stream_batches`` for ``table``; None when the stream never landed in it."""
    if not lake.exists(STREAM_BATCHES):
        return None
    rows = lake.query(
        f"SELECT batch_id, lag, committed_at FROM {STREAM_BATCHES} WHERE table_name = $table "
        "ORDER BY committed_at DESC, batch_id DESC LIMIT 1",
        [STREAM_BATCHES],
        {"table": str(table)},
    ).to_pylist()
    return rows[0] if rows else None


def streamed_tables(sources: Iterable[str]) -> list[TableRef]:
    """The bronze tables `retreasure stream` lands in, of the given sources (``web``)."""
    entities = StreamingSettings().entities.values()
    return [TableRef("bronze", entity.replace(".", "_")) for entity in entities if entity.split(".")[0] in sources]


def stream_checks(tables: Sequence[TableRef]) -> list[dg.AssetChecksDefinition]:
    """``stream_lag`` and ``stream_freshness`` of each streamed bronze table, read from ``ops.stream_batches``."""
    return [check for table in tables for check in (_lag_check(table), _freshness_check(table))]


def stream_checks_job(tables: Sequence[TableRef]) -> UnresolvedAssetJobDefinition:
    keys = [dg.AssetCheckKey(asset_key(t), name) for t in tables for name in (LAG_CHECK, FRESHNESS_CHECK)]
    return dg.define_asset_job(
        STREAM_CHECKS_JOB,
        selection=dg.AssetSelection.checks(*keys),
        description="The stream's lag and freshness, from ops.stream_batches.",
    )


def stream_checks_schedule(job: UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=f"{STREAM_CHECKS_JOB}_schedule",
        cron_schedule="*/10 * * * *",
        job=job,
        execution_timezone="UTC",
        description="Every ten minutes: is the stream keeping up, and landing at all?",
    )


def _lag_check(table: TableRef) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key(table),
        name=LAG_CHECK,
        description=f"The stream's newest batch is at most {LAG_LIMIT:,} messages behind (ops.stream_batches).",
        blocking=False,
    )
    def lag(retreasure: RetreasureResource) -> dg.AssetCheckResult:
        newest = newest_batch(retreasure.lake(), table)
        evaluation = lag_evaluation(
            table,
            None if newest is None else newest["lag"],
            LAG_LIMIT,
            {"last batch": (newest or {}).get("batch_id") or "-"},
        )
        return dg.AssetCheckResult(passed=evaluation.passed, severity=evaluation.severity, metadata=evaluation.metadata)

    return lag


def _freshness_check(table: TableRef) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key(table),
        name=FRESHNESS_CHECK,
        description=f"The stream landed a batch in the last {FRESHNESS_LIMIT_S:g} s (ops.stream_batches).",
        blocking=False,
    )
    def freshness(retreasure: RetreasureResource) -> dg.AssetCheckResult:
        newest = newest_batch(retreasure.lake(), table)
        age = None if newest is None else (datetime.now(UTC) - newest["committed_at"]).total_seconds()
        return dg.AssetCheckResult(
            passed=age is not None and age <= FRESHNESS_LIMIT_S,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"age s": -1.0 if age is None else round(age, 1), "limit s": FRESHNESS_LIMIT_S},
        )

    return freshness
