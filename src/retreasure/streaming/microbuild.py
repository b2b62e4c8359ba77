"""The stream's micro-builds: what the stream landed in bronze, brought on into silver and gold every few seconds,
by the batch path's own incremental build, restricted to the models the streamed bronze tables feed.

A micro-build is ``engine.build.build_incremental(only_from=<the streamed tables>)``: the days those tables gained
since the watermark, each model's lookback, propagation downstream by the partitions written; so the streamed
tables end up row for row as a batch build of the same bronze makes them. It moves the watermark of the streamed
tables only (``ops.builds`` mode ``downstream``), and leaves every other model to the hourly build.

A row landing for a day older than the newest day its table held before, less the largest lookback of the models
it feeds, is late beyond the lookback: it is built like any other (the changed day is rebuilt whatever its age)
and counted, per day, in ``ops.stream_builds``, one row per micro-build.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa

from retreasure.engine.build import Build, build_incremental, lookback_of
from retreasure.engine.models import Model, load_models
from retreasure.lake.lock import LakeBusy, build_lock
from retreasure.lake.store import Lake, TableRef
from retreasure.log import get_logger
from retreasure.redact import redact
from retreasure.streaming.landing import LandedBatch

log = get_logger("stream")
STREAM_BUILDS = TableRef("ops", "stream_builds")
STREAM_BUILDS_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),  # the build's id in ops.builds, ops.dq_results and the Dagster UI
        ("mode", pa.string()),  # downstream; full for a lake's very first build
        # success | blocked (a blocking check stopped part of it) | failed | skipped (another build held the lake)
        ("status", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("seconds", pa.float64()),
        ("bronze_rows", pa.int64()),  # rows the streamed tables gained since the last build
        ("arrived", pa.string()),  # JSON {table: {day: rows}} of those rows
        ("late_rows", pa.int64()),  # of them, rows late beyond the lookback (built all the same)
        ("late", pa.string()),  # JSON {table: {day: rows}} of the late rows
        ("model_runs", pa.int64()),
        ("rows_written", pa.int64()),
        ("error", pa.string()),  # why a failed build failed, masked
    ]
)

# An incremental build of what the given bronze tables feed: the engine's, or one that also reports each model
# run to Dagster (given by the command layer, which sits above both).
BuildFn = Callable[[Lake, Sequence[TableRef]], Build]
FINAL_WAIT_S = 120.0


def engine_build(models: dict[TableRef, Model]) -> BuildFn:
    def build(lake: Lake, tables: Sequence[TableRef]) -> Build:
        return build_incremental(lake, models, only_from=tables)

    return build


@dataclass
class MicroBuild:
    """One micro-build's figures: its row of ``ops.stream_builds``."""

    run_id: str
    mode: str
    status: str
    started_at: datetime
    seconds: float = 0.0
    arrived: dict[str, dict[date, int]] = field(default_factory=dict)
    late: dict[str, dict[date, int]] = field(default_factory=dict)
    model_runs: int = 0
    rows_written: int = 0
    error: str | None = None

    @property
    def bronze_rows(self) -> int:
        return sum(sum(days.values()) for days in self.arrived.values())

    @property
    def late_rows(self) -> int:
        return sum(sum(days.values()) for days in self.late.values())

    def as_row(self) -> dict[str, object]:
        def by_day(tables: dict[str, dict[date, int]]) -> str:
            return json.dumps({t: {d.isoformat(): n for d, n in days.items()} for t, days in tables.items()})

        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.status,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "bronze_rows": self.bronze_rows,
            "arrived": by_day(self.arrived),
            "late_rows": self.late_rows,
            "late": by_day(self.late),
            "model_runs": self.model_runs,
            "rows_written": self.rows_written,
            "error": self.error,
        }


@dataclass
class MicroBuildTotals:
    builds: int = 0
    failed: int = 0
    blocked: int = 0
    skipped: int = 0
    late_rows: int = 0


class MicroBuilds:
    """Builds what the streamed bronze tables feed every ``every_s`` seconds when something landed (``start``),
    or when asked (``build_now``); ``stop`` ends the cadence with a last build of what is left."""

    def __init__(
        self,
        lake: Lake,
        tables: Sequence[TableRef],
        every_s: float,
        build: BuildFn | None = None,
        models: dict[TableRef, Model] | None = None,
    ) -> None:
        # A Lake object of its own: one keeps its tables' objects for reuse, and the landing writes through its own
        # from another thread while a build reads.
        self.lake = Lake(lake.uri, lake.storage_options)
        self.tables = list(tables)
        self.every_s = every_s
        self.models = models if models is not None else load_models()
        self._build = build or engine_build(self.models)
        self.lookbacks = {str(t): lookback_of(self.models, t) for t in self.tables}
        self.totals = MicroBuildTotals()
        # What the last build on stop waits for another build (the hourly one) to end before leaving it the rows.
        self.final_wait_s = FINAL_WAIT_S
        self._pending = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def landed(self, batch: LandedBatch) -> None:
        """The stream's callback after each landing: a commit to a streamed table makes the next tick build."""
        if batch.version is not None:
            self._pending.set()

    def build_now(self, wait_s: float = 0.0) -> MicroBuild:
        """One micro-build, recorded in ``ops.stream_builds``. A failure is logged and recorded, not raised: the
        watermark did not move, so the next build takes the same changes again. While another build holds the
        lake (the hourly one), it waits ``wait_s`` at most, then skips: the next tick takes the rows on."""
        self._pending.clear()
        began, clock = datetime.now(UTC), time.monotonic()
        try:
            with build_lock(self.lake, "downstream", wait_s):
                result = self._build(self.lake, self.tables)
        except LakeBusy as busy:
            self._pending.set()
            done = MicroBuild("", "downstream", "skipped", began, error=str(busy))
        except Exception as exc:  # the stream goes on landing; the next tick tries again
            self._pending.set()
            done = MicroBuild("", "downstream", "failed", began, error=redact(f"{type(exc).__name__}: {exc}"))
        else:
            status = "blocked" if result.blocked else "success"
            done = MicroBuild(result.run_id, result.mode, status, began)
            for ref, gained in result.arrivals.items():
                if gained is not None and gained.rows:
                    done.arrived[str(ref)] = dict(sorted(gained.rows.items()))
                    late = gained.older_than(self.lookbacks[str(ref)])
                    if late:
                        done.late[str(ref)] = late
            done.model_runs, done.rows_written = len(result.runs), sum(r.rows for r in result.runs)
        done.seconds = time.monotonic() - clock
        self._account(done)
        return done

    def _account(self, done: MicroBuild) -> None:
        self.totals.builds += 1
        self.totals.failed += done.status == "failed"
        self.totals.blocked += done.status == "blocked"
        self.totals.skipped += done.status == "skipped"
        self.totals.late_rows += done.late_rows
        self.lake.append(STREAM_BUILDS, pa.Table.from_pylist([done.as_row()], schema=STREAM_BUILDS_SCHEMA))
        figures = {k: v for k, v in done.as_row().items() if k not in ("started_at", "arrived", "late")}
        if done.status == "failed":
            log.error("stream build failed", extra=figures)
        elif done.status == "skipped":
            log.info("stream build skipped: another build holds the lake", extra=figures)
        else:
            log.info("stream build", extra=figures)
        if done.late:
            late = {t: {d.isoformat(): n for d, n in days.items()} for t, days in done.late.items()}
            log.warning("late events built", extra={"run_id": done.run_id, "late": late, "lookbacks": self.lookbacks})

    # -- the cadence ----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._tick, name="stream-builds", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        while not self._stopping.wait(self.every_s):
            if self._pending.is_set():
                try:
                    self.build_now()
                except Exception as exc:  # its figures could not be written: the cadence goes on all the same
                    self._pending.set()
                    log.error("stream build not recorded", extra={"error": redact(f"{type(exc).__name__}: {exc}")})

    def stop(self, final: bool = True) -> None:
        """End the cadence (a build under way finishes first); with ``final``, build what landed since."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if final and self._pending.is_set():
            self.build_now(self.final_wait_s)
