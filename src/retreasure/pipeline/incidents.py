"""Failure handling for every step: a structured error on each failed attempt; after the last attempt, an
incident in ``ops.incidents`` (opened, or updated when the same asset and partition is already failing) and
one alert per channel; a later success resolves it.

This runs inside the step (``StepGuard``) rather than as a Dagster failure hook: in Dagster 1.13 hooks attached
to assets do not fire under ``materialize()`` nor for the UI's ad-hoc runs, and a job-level failure hook was
skipped after policy retries. The step itself knows its attempt number and its retry policy, so it can tell
the last attempt exactly, whatever launched it.
"""

from __future__ import annotations

import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg
import pyarrow as pa
from deltalake.exceptions import CommitFailedError

from retreasure.lake.store import Lake, TableRef
from retreasure.log import get_logger
from retreasure.pipeline.alerts import Alert, notify
from retreasure.redact import redact

if TYPE_CHECKING:
    from retreasure.pipeline.resources import RetreasureResource

INCIDENTS = TableRef("ops", "incidents")
INCIDENTS_SCHEMA = pa.schema(
    [
        ("incident_id", pa.string()),
        ("asset", pa.string()),  # layer.name of a model, bronze.<source> for a source's ingest
        ("partition", pa.string()),  # the partition key (or first..last); null when unpartitioned
        ("error", pa.string()),  # the latest error, secrets masked
        ("first_seen", pa.timestamp("us", tz="UTC")),
        ("last_seen", pa.timestamp("us", tz="UTC")),
        ("occurrences", pa.int64()),
        ("status", pa.string()),  # open | resolved
        ("resolved_at", pa.timestamp("us", tz="UTC")),
        ("last_run_id", pa.string()),
    ]
)
MAX_ERROR = 4000
T = TypeVar("T")
log = get_logger("pipeline")


@dataclass(frozen=True)
class Incident:
    incident_id: str
    asset: str
    partition: str | None
    occurrences: int
    opened: bool  # False when an open incident was updated


def open_incident(
    lake: Lake, asset: str, partition: str | None, error: str, run_id: str, now: datetime | None = None
) -> Incident:
    """Open an incident for ``asset``/``partition``, or count one more occurrence of the one already open."""
    now = now or datetime.now(UTC)
    error = redact(error)[:MAX_ERROR]

    def write() -> Incident:
        current = _open(lake, asset, partition)
        if current:
            row = current[0] | {"error": error, "last_seen": now, "occurrences": current[0]["occurrences"] + 1}
            row["last_run_id"] = run_id
            lake.merge(INCIDENTS, pa.Table.from_pylist([row], schema=INCIDENTS_SCHEMA), ["incident_id"])
            return Incident(row["incident_id"], asset, partition, row["occurrences"], opened=False)
        row = {
            "incident_id": uuid.uuid4().hex[:12],
            "asset": asset,
            "partition": partition,
            "error": error,
            "first_seen": now,
            "last_seen": now,
            "occurrences": 1,
            "status": "open",
            "resolved_at": None,
            "last_run_id": run_id,
        }
        lake.append(INCIDENTS, pa.Table.from_pylist([row], schema=INCIDENTS_SCHEMA))
        return Incident(row["incident_id"], asset, partition, 1, opened=True)

    return _retrying(write)


def resolve_incidents(
    lake: Lake, asset: str, partition: str | None, run_id: str, now: datetime | None = None
) -> list[str]:
    """Mark the open incidents of ``asset``/``partition`` resolved; returns their ids."""
    now = now or datetime.now(UTC)

    def write() -> list[str]:
        rows = _open(lake, asset, partition)
        if not rows:
            return []
        for row in rows:
            row.update(status="resolved", resolved_at=now, last_run_id=run_id)
        lake.merge(INCIDENTS, pa.Table.from_pylist(rows, schema=INCIDENTS_SCHEMA), ["incident_id"])
        return [r["incident_id"] for r in rows]

    return _retrying(write)


def incidents(lake: Lake, status: str | None = None) -> list[dict[str, Any]]:
    if not lake.exists(INCIDENTS):
        return []
    where = "WHERE status = $status" if status else ""
    params = {"status": status} if status else None
    return lake.query(f"SELECT * FROM {INCIDENTS} {where} ORDER BY first_seen", [INCIDENTS], params).to_pylist()


def _open(lake: Lake, asset: str, partition: str | None) -> list[dict[str, Any]]:
    if not lake.exists(INCIDENTS):
        return []
    return lake.query(
        f'SELECT * FROM {INCIDENTS} WHERE asset = $asset AND "partition" IS NOT DISTINCT FROM $partition '
        "AND status = 'open' ORDER BY first_seen",
        [INCIDENTS],
        {"asset": asset, "partition": partition},
    ).to_pylist()


def _retrying(write: Callable[[], T], attempts: int = 5) -> T:
    """Steps of one run may fail at the same moment in several processes: a lost commit race is retried."""
    for attempt in range(attempts):
        try:
            return write()
        except CommitFailedError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def masked(exc: Exception) -> dg.Failure:
    """The same failure, retryable, with every secret masked in its message and traceback."""
    return dg.Failure(
        description=redact(f"{type(exc).__name__}: {exc}")[:MAX_ERROR],
        metadata={"traceback": dg.MetadataValue.text(redact("".join(traceback.format_exception(exc))))},
        allow_retries=True,
    )


def is_final_attempt(context: dg.OpExecutionContext | dg.AssetExecutionContext, exc: BaseException) -> bool:
    """True when Dagster will not run this step again after ``exc``."""
    if isinstance(exc, dg.Failure) and not exc.allow_retries:
        return True
    if isinstance(exc, dg.RetryRequested):
        return context.retry_number >= exc.max_retries
    policy = context.op_def.retry_policy
    return policy is None or context.retry_number >= policy.max_retries


class StepGuard:
    """Wraps a step's work: ``with StepGuard(...) as guard: ...`` then ``guard.succeeded()`` or
    ``guard.blocked(reason)``. Failures are reported, never swallowed: the exception goes on to Dagster."""

    def __init__(
        self,
        context: dg.OpExecutionContext | dg.AssetExecutionContext,
        resource: RetreasureResource,
        asset: str,
        partition: str | None = None,
    ) -> None:
        self.context = context
        self.resource = resource
        self.asset = asset
        self.partition = partition

    def __enter__(self) -> StepGuard:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if isinstance(exc, Exception):
            self.failed(exc)
            if not isinstance(exc, dg.Failure | dg.RetryRequested):
                # Dagster keeps a failure's message and stack in its run history and shows them in the UI:
                # hand it the masked text only, not the original exception (``from None`` drops the chain).
                raise masked(exc) from None
        return False

    @property
    def attempt(self) -> int:
        return self.context.retry_number + 1

    def failed(self, exc: Exception) -> None:
        final = is_final_attempt(self.context, exc)
        error = redact(f"{type(exc).__name__}: {exc}")[:MAX_ERROR]
        self._log_failure(error, final)
        if final:
            self._report(error)

    def blocked(self, reason: str) -> None:
        """The step ran but a blocking check failed: Dagster fails the step without retrying it."""
        error = redact(reason)[:MAX_ERROR]
        self._log_failure(error, final=True)
        self._report(error)

    def succeeded(self) -> None:
        try:
            resolved = resolve_incidents(self.resource.lake(), self.asset, self.partition, self.context.run.run_id)
        except Exception as exc:  # bookkeeping must not fail a step that did its work
            log.error("incident not resolved", extra={"asset": self.asset, "error": redact(str(exc))})
            return
        if resolved:
            self.context.log.info(f"resolved incident(s) {', '.join(resolved)} of {self.asset}")
            log.info("incident resolved", extra={"asset": self.asset, "partition": self.partition, "ids": resolved})

    def _log_failure(self, error: str, final: bool) -> None:
        policy = self.context.op_def.retry_policy
        fields = {
            "asset": self.asset,
            "partition": self.partition,
            "run_id": self.context.run.run_id,
            "attempt": self.attempt,
            "max_retries": policy.max_retries if policy else 0,
            "final": final,
            "error": error,
        }
        log.error("step failed", extra=fields)
        self.context.log.error(redact(f"step failed: {fields}"))

    def _report(self, error: str) -> None:
        incident: Incident | None = None
        try:
            incident = open_incident(self.resource.lake(), self.asset, self.partition, error, self.context.run.run_id)
        except Exception as exc:  # the alert still goes out when the lake itself is what failed
            log.error("incident not recorded", extra={"asset": self.asset, "error": redact(str(exc))})
        alert = Alert(
            asset=self.asset,
            partition=self.partition,
            error=error,
            run_id=self.context.run.run_id,
            incident_id=incident.incident_id if incident else "not recorded",
            occurrences=incident.occurrences if incident else 0,
            attempts=self.attempt,
        )
        try:
            outcome = notify(self.resource.alerts(), alert)
        except Exception as exc:
            outcome = {"settings": redact(f"{type(exc).__name__}: {exc}")}
        log.warning(
            "incident",
            extra={
                "asset": self.asset,
                "partition": self.partition,
                "incident_id": alert.incident_id,
                "occurrences": alert.occurrences,
                "alerts": outcome,
            },
        )
        self.context.log.warning(f"incident {alert.incident_id} ({self.asset}): alerts {outcome}")
