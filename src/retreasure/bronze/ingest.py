"""Running ingests: every selected source, entity by entity, into bronze, with the ingest log written as each
entity starts and completed as it finishes. One failing source never stops the others; its failure is in the log
with the error.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import pyarrow as pa

from retreasure.bronze.landing import BronzeWriter, bronze_table
from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import Entity, FileSource, RawRecord, Source, Window, load_sources
from retreasure.connectors.files import file_date, json_line_texts, origin_of
from retreasure.lake import ingest_log
from retreasure.lake.ingest_log import IngestRun
from retreasure.lake.store import Lake, TableRef
from retreasure.log import get_logger
from retreasure.records.instants import parse_instant
from retreasure.records.sizes import oversized
from retreasure.redact import redact
from retreasure.settings import Settings

LANDED_FILES = TableRef("ops", "landed_files")
LANDED_FILES_SCHEMA = pa.schema(
    [
        ("path", pa.string()),  # relative to the landing folder
        ("sha256", pa.string()),
        ("bytes", pa.int64()),
        ("source", pa.string()),
        ("entity", pa.string()),
        ("run_id", pa.string()),
        ("landed_at", pa.timestamp("us", tz="UTC")),
    ]
)
# Files that could not be read (not the format, hostile, over the size limit): refused once, with the reason, and
# not read again while their content is unchanged. Deleting a row (``retreasure ingest --retry-refused``) retries.
REFUSED_FILES = TableRef("ops", "refused_files")
REFUSED_FILES_SCHEMA = pa.schema(
    [
        ("path", pa.string()),  # relative to the landing folder
        ("source", pa.string()),
        ("entity", pa.string()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("reason", pa.string()),
        ("run_id", pa.string()),
        ("refused_at", pa.timestamp("us", tz="UTC")),
    ]
)
# What each file's content was when it was last hashed, by (path, size, mtime): a file whose size and mtime are
# unchanged is taken to hold that content and is not read again to be hashed, so a run with nothing new costs a
# stat per file, not a read of every file ever landed. Whether that content is landed (or refused) is still
# decided by ``LANDED_FILES`` and ``REFUSED_FILES`` alone. Accepted risk: a file rewritten in place with another
# content of the same size within the file system's mtime resolution (or with its mtime set back) is taken for
# the old one; any change of size or mtime gets the file hashed again.
FILE_STATS = TableRef("ops", "landing_file_stats")
FILE_STATS_SCHEMA = pa.schema(
    [
        ("path", pa.string()),  # relative to the landing folder
        ("source", pa.string()),
        ("entity", pa.string()),
        ("bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("sha256", pa.string()),
        ("hashed_at", pa.timestamp("us", tz="UTC")),
    ]
)
Progress = Callable[[str, int], None]  # (what, records so far)
LINES_PER_BATCH = 2048  # lines of a JSON Lines file masked and serialised at once: big enough for C to pay off
log = get_logger("ingest")


def run_ingest(
    settings: Settings,
    lake: Lake,
    sources: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
    finished: Callable[[IngestRun], None] | None = None,
    interrupted: Callable[[IngestRun], None] | None = None,
) -> list[IngestRun]:
    """Ingest the named sources (all by default); returns one log row per source entity. ``finished`` hears of
    each entity as its run completes. Runs of this host left ``running`` by a dead process are first marked
    ``interrupted``, and ``interrupted`` hears of each."""
    registry = load_sources()
    names = list(sources) if sources else list(registry)
    unknown = sorted(set(names) - set(registry))
    if unknown:
        raise ValueError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(registry)}")
    # Each source reads its own settings section as it is made: a bad one stops the run before anything lands.
    chosen = [registry[name](settings) for name in names]
    for run in ingest_log.close_interrupted(lake):
        log.warning("interrupted run found", extra={"source": run.source, "entity": run.entity, "run": run.run_id})
        if interrupted:
            interrupted(run)
    masker = PiiMasker(settings.pii_hmac_key.get_secret_value(), settings.pii_vault_key.get_secret_value() or None)
    run_id = uuid.uuid4().hex[:12]
    runs: list[IngestRun] = []
    for source in chosen:
        try:
            for entity in source.entities:
                run = _ingest_entity(settings, lake, masker, source, entity, run_id, since, until, progress)
                runs.append(run)
                if finished:
                    finished(run)
        finally:
            source.close()
    return runs


def _ingest_entity(
    settings: Settings,
    lake: Lake,
    masker: PiiMasker,
    source: Source,
    entity: Entity,
    run_id: str,
    since: datetime | None,
    until: datetime | None,
    progress: Progress | None,
) -> IngestRun:
    """One entity's run, logged as it starts and completed as it ends, whatever the end: an exception is the
    entity's failure; an interruption (Ctrl-C) is logged ``interrupted`` and goes on up."""
    table = bronze_table(source.name, entity)
    run = IngestRun(run_id, source.name, entity.name, str(table))
    ingest_log.start(lake, run)
    writer = BronzeWriter(
        lake,
        masker,
        source.name,
        entity,
        batch_id=f"{run_id}/{table.name}",
        max_record_bytes=settings.ingest.max_record_bytes,
        max_line_bytes=settings.ingest.max_line_bytes,
    )
    started = time.monotonic()
    requests_before, retries_before, bytes_before = source.stats.requests, source.stats.retries, source.stats.bytes
    source.stats.last_retry = None
    try:
        if isinstance(source, FileSource):
            failures = _land_files(settings, lake, source, entity, writer, run, progress)
            if failures:
                run.status, run.error = ingest_log.PARTIAL, "; ".join(failures)[:4000]
        else:
            window = resolve_window(settings, lake, source.name, entity.name, since, until)
            run.window_start, run.window_end = window.start, window.end
            _land(writer, source.extract(entity, window), settings.ingest.flush_records, progress, str(table))
        if run.status == ingest_log.RUNNING:
            run.status = ingest_log.SUCCESS
    except Exception as exc:  # one source's failure must not stop the others
        run.status, run.error = ingest_log.FAILED, redact(f"{type(exc).__name__}: {exc}")[:4000]
        log.error("ingest failed", extra={"source": source.name, "entity": entity.name, "error": run.error})
    except BaseException:
        run.status, run.error = ingest_log.INTERRUPTED, "interrupted (KeyboardInterrupt or exit) before it completed"
        raise
    finally:
        run.records, run.malformed, run.new_records = (
            writer.stats.records,
            writer.stats.malformed,
            writer.stats.new_records,
        )
        run.requests = source.stats.requests - requests_before
        run.retries = source.stats.retries - retries_before
        run.last_retry = source.stats.last_retry if run.retries else None
        run.bytes = (source.stats.bytes - bytes_before) or writer.stats.bytes
        run.duration_s = round(time.monotonic() - started, 3)
        run.finished_at = datetime.now(UTC)
        ingest_log.finish(lake, run)
    for warning in ingest_log.summarise_warnings(run.warnings, examples=20):
        log.warning("landed with a warning", extra={"source": source.name, "entity": entity.name, "warning": warning})
    log.info(
        "ingested",
        extra={
            "source": source.name,
            "entity": entity.name,
            "status": run.status,
            "records": run.records,
            "new": run.new_records,
            "malformed": run.malformed,
            "requests": run.requests,
            "retries": run.retries,
            "seconds": run.duration_s,
        },
    )
    return run


def _land(
    writer: BronzeWriter, records: Iterator[RawRecord], flush_every: int, progress: Progress | None, label: str
) -> None:
    for record in records:
        writer.add(record)
        if writer.pending >= flush_every:
            writer.flush()
            if progress:
                progress(label, writer.stats.records)
    writer.flush()
    if progress:
        progress(label, writer.stats.records)


def resolve_window(
    settings: Settings,
    lake: Lake,
    source: str,
    entity: str,
    since: datetime | None,
    until: datetime | None,
) -> Window:
    """Explicit bounds win; otherwise from the last landed window's end, less the lookback, until now."""
    end = until or datetime.now(UTC).replace(microsecond=0)
    if since is None:
        mark = ingest_log.watermark(lake, source, entity)
        since = (
            mark - timedelta(minutes=settings.ingest.lookback_minutes) if mark else parse_instant(settings.ingest.start)
        )
    assert since is not None
    if since >= end:
        raise ValueError(f"{source}.{entity}: window start {since.isoformat()} is not before {end.isoformat()}")
    return Window(since, end)


def _land_files(
    settings: Settings,
    lake: Lake,
    source: FileSource,
    entity: Entity,
    writer: BronzeWriter,
    run: IngestRun,
    progress: Progress | None,
) -> list[str]:
    """Land each new or changed file once. A file that cannot be read is refused once (``ops.refused_files``)
    and not read again until its content changes; its records already read are dropped with it. Returns what
    was refused this run."""
    landing = Path(settings.landing_dir)
    limits = settings.ingest
    seen = _landed(lake, source.name, entity.name) | _landed(lake, source.name, entity.name, REFUSED_FILES)
    hashed = _hashed(lake, source.name, entity.name)
    failures: list[str] = []
    done: list[dict[str, object]] = []
    refused: list[dict[str, object]] = []
    stats: list[dict[str, object]] = []
    label = str(bronze_table(source.name, entity))

    def commit() -> None:
        writer.flush()
        if done:
            lake.append(LANDED_FILES, pa.Table.from_pylist(done, schema=LANDED_FILES_SCHEMA))
            done.clear()
        if refused:
            lake.append(REFUSED_FILES, pa.Table.from_pylist(refused, schema=REFUSED_FILES_SCHEMA))
            refused.clear()
        if stats:
            lake.append(FILE_STATS, pa.Table.from_pylist(stats, schema=FILE_STATS_SCHEMA))
            stats.clear()
        if progress:
            progress(label, writer.stats.records)

    for path in source.files(entity):
        relative = path.relative_to(landing).as_posix()
        stat = path.stat()  # before the read: a write after it changes the mtime, and the next run hashes again
        size = stat.st_size
        digest = hashed.get((relative, size, stat.st_mtime_ns))
        if digest is None:
            digest = _sha256(path)
            stats.append(
                {"path": relative, "source": source.name, "entity": entity.name, "bytes": size}
                | {"mtime_ns": stat.st_mtime_ns, "sha256": digest, "hashed_at": datetime.now(UTC)}
            )
        if (relative, digest) in seen:
            continue
        received = writer.stats.records
        if size > limits.max_file_bytes:
            reason, lasting = oversized("file", size, digest, limits.max_file_bytes), True
        else:
            reason, lasting = _read_file(source, entity, path, writer)
        row = {"path": relative, "sha256": digest, "bytes": size, "source": source.name, "entity": entity.name}
        if reason is not None:
            failures.append(f"{relative}: {reason}")
            log.warning("file refused", extra={"source": source.name, "file": relative, "error": reason})
            if lasting:
                refused.append(row | {"reason": reason, "run_id": run.run_id, "refused_at": datetime.now(UTC)})
            continue
        run.files += 1
        if writer.stats.records == received:
            run.warnings.append(f"{relative}: no records (empty or header-only)")
        done.append(row | {"run_id": run.run_id, "landed_at": datetime.now(UTC)})
        if writer.pending >= settings.ingest.flush_records:
            commit()
    commit()
    return failures


def _read_file(source: FileSource, entity: Entity, path: Path, writer: BronzeWriter) -> tuple[str | None, bool]:
    """Buffer a file's records; on failure none of them stays buffered. Returns why it failed (None if it did
    not) and whether that lasts: a file that could not be opened or read this time (permissions, a share away)
    is retried next run, one whose content cannot be read is refused until it changes."""
    mark = writer.mark()
    try:
        if entity.json_lines:  # the records FileSource.read would make, a batch of lines at a time
            origin, day = origin_of(source, path), file_date(path)
            lines = json_line_texts(path, writer.max_line_bytes)
            while batch := list(islice(lines, LINES_PER_BATCH)):
                writer.add_lines(batch, origin, day)
        else:
            for record in source.read(entity, path):
                writer.add(record)
    except Exception as exc:  # a hostile or broken file: refuse it, keep going with the others
        writer.rollback(mark)
        return redact(f"{type(exc).__name__}: {exc}")[:2000], not isinstance(exc, OSError)
    return None, False


def forget_refused(lake: Lake, sources: Iterable[str]) -> int:
    """Let the named sources' refused files be read again on the next ingest (after a fix of the reader or the
    limits); returns how many refusals were forgotten."""
    names = sorted(set(sources))
    if not names or not lake.exists(REFUSED_FILES):
        return 0
    count = lake.query(
        f"SELECT count(*) AS n FROM {REFUSED_FILES} WHERE list_contains($names, source)",
        [REFUSED_FILES],
        {"names": names},
    )
    forgotten = count.column("n")[0].as_py()
    if forgotten:
        quoted = ", ".join("'" + name.replace("'", "''") + "'" for name in names)
        lake.overwrite(REFUSED_FILES, REFUSED_FILES_SCHEMA.empty_table(), predicate=f"source IN ({quoted})")
    return forgotten


def _landed(lake: Lake, source: str, entity: str, table: TableRef = LANDED_FILES) -> set[tuple[str, str]]:
    """(path, sha256) of the entity's files in ``table``: landed, or refused."""
    if not lake.exists(table):
        return set()
    rows = lake.query(
        f"SELECT path, sha256 FROM {table} WHERE source = $source AND entity = $entity",
        [table],
        {"source": source, "entity": entity},
    )
    return set(zip(rows.column("path").to_pylist(), rows.column("sha256").to_pylist(), strict=True))


def _hashed(lake: Lake, source: str, entity: str) -> dict[tuple[str, int, int], str]:
    """The entity's files' content hashes by (path, size, mtime) when they were hashed (``FILE_STATS``)."""
    if not lake.exists(FILE_STATS):
        return {}
    rows = lake.query(
        f"SELECT path, bytes, mtime_ns, sha256 FROM {FILE_STATS} WHERE source = $source AND entity = $entity",
        [FILE_STATS],
        {"source": source, "entity": entity},
    )
    keys = zip(*(rows.column(name).to_pylist() for name in ("path", "bytes", "mtime_ns")), strict=True)
    return dict(zip(keys, rows.column("sha256").to_pylist(), strict=True))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
