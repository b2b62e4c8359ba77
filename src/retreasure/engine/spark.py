"""The Spark engine: the same models, contracts and write modes on PySpark with Delta (the scale path:
Databricks on the lake in Azure storage; a local session here).

A model's SQL is rendered as for DuckDB, then rewritten for Spark by ``spark_dialect`` (the one place the engines
differ). Its rows stay in Spark; only the rows that fail a row rule travel to the driver, where the same judgement
as on DuckDB (``quality.checks.rule_failures``) writes them to quarantine. Writes: ``full`` overwrites the table,
``overwrite_partitions`` replaces the window's partitions (``replaceWhere``), ``upsert`` is a Delta ``MERGE`` that
keeps the newest version per key (``merge`` the same over the whole table). Table checks and the DQ log are the
runner's, as on DuckDB: they read the written tables through delta-rs, which is why every table Spark writes keeps a
protocol delta-rs reads.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from datetime import date
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from retreasure.engine.models import ALL_TIME, Model
from retreasure.engine.runner import Computed, tombstones
from retreasure.engine.spark_dialect import SESSION_CONF, condition_to_spark, to_spark
from retreasure.engine.spark_storage import hadoop_conf, spark_uri
from retreasure.http import maven
from retreasure.lake.bronze import BRONZE_SCHEMA
from retreasure.lake.sql import first_per_key
from retreasure.lake.store import Lake, TableRef
from retreasure.log import get_logger
from retreasure.quality.checks import failing_condition, rule_failures
from retreasure.settings import StorageSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger("engine")
JARS_LOCK = Path(__file__).with_name("spark_jars.txt")
ROW_ID = "__row_id"
DEAD = "__dead"  # a version a row rule dropped (``runner._newest``)


class SparkUnavailable(RuntimeError):
    """The Spark engine was asked for where pyspark (``retreasure[spark]``) or Java is missing."""


class SparkEngine:
    """Runs models on a Spark session (one per process, started on first use)."""

    name = "spark"
    workers = 1  # one model at a time: the session spreads each one over the cluster

    def __init__(
        self,
        master: str = "local[2]",
        driver_memory: str = "1g",
        shuffle_partitions: int = 2,
        jars_dir: Path = Path(".tools/spark"),
        conf: dict[str, str] | None = None,
        storage: StorageSettings | None = None,
    ) -> None:
        self.master, self.driver_memory, self.shuffle_partitions = master, driver_memory, shuffle_partitions
        self.jars_dir, self.conf = jars_dir, dict(conf or {})
        # How a lake on Azure storage is reached: the settings' storage section, as delta-rs is given it.
        self.storage = storage or StorageSettings()
        self._reached: set[str] = set()  # lakes whose storage the session has been told how to reach

    @classmethod
    def from_settings(cls, settings: Any) -> SparkEngine:
        spark = settings.spark
        return cls(
            spark.master, spark.driver_memory, spark.shuffle_partitions, spark.jars_dir, spark.conf, settings.storage
        )

    def __repr__(self) -> str:  # no storage credential in a repr
        return f"SparkEngine(master={self.master!r}, shuffle_partitions={self.shuffle_partitions})"

    @property
    def session(self) -> SparkSession:
        return spark_session(self.master, self.driver_memory, self.shuffle_partitions, self.jars_dir, self.conf)

    def stop(self) -> None:
        """Stop the process's session and, for a local one, its JVM (a later use starts both again)."""
        from pyspark import SparkContext
        from pyspark.sql import SparkSession

        with _SESSION_LOCK:
            # The active session is per thread: the one a build started on a worker thread is the instantiated one.
            active = SparkSession.getActiveSession() or SparkSession._instantiatedSession
            if active is not None:
                active.stop()
            if not os.environ.get("DATABRICKS_RUNTIME_VERSION"):  # a cluster's JVM is the cluster's, not ours
                _end_local_jvm(SparkContext)
        self._reached.clear()

    # -- compute ---------------------------------------------------------------------------------
    def compute(self, lake: Lake, model: Model, start: date, end: date, run_id: str) -> Computed:
        from pyspark.sql import functions as F

        spark = self.session
        sql = to_spark(
            model.render(start, end),
            lambda layer, name: self._view(lake, TableRef(layer, name)),
            lambda query: spark.sql(query).columns,
        )
        try:
            rows = spark.sql(sql)
        except Exception as exc:
            raise SparkModelError(model.ref, exc) from exc
        rules = model.contract.row_rules
        if not rules:
            rows = rows.persist()
            return Computed(rows, self._count(model.ref, rows), _empty_quarantine(), [])
        rows = rows.withColumn(ROW_ID, F.monotonically_increasing_id()).persist()
        failing_any = reduce(
            lambda a, b: a | b,
            [F.expr(f"coalesce(({condition_to_spark(failing_condition(r)[0])}), false)") for r in rules],
        )
        try:
            failing = rows.where(failing_any).toArrow()
            total = rows.count()
        except Exception as exc:
            rows.unpersist()
            raise SparkModelError(model.ref, exc) from exc
        ids = failing.column(ROW_ID).to_pylist()
        judged = failing.drop_columns([ROW_ID])
        dropped, quarantined, checks = rule_failures(judged, model.contract, str(model.ref), run_id)
        for check in checks:
            check.checked = total
        kept = rows
        if dropped:
            gone = spark.createDataFrame(pa.table({ROW_ID: pa.array([ids[i] for i in dropped], pa.int64())}))
            kept = rows.join(F.broadcast(gone), ROW_ID, "left_anti")
        return Computed(
            kept.drop(ROW_ID),
            total - len(dropped),
            quarantined,
            checks,
            judged.take(pa.array(sorted(dropped), pa.int64())),
        )

    def _uri(self, lake: Lake, ref: TableRef) -> str:
        """Where Spark reads and writes ``ref``; the session learns the lake's storage credentials on first use
        (set on the running session, as a test's or a cluster's session may have started before)."""
        if lake.uri not in self._reached:
            for key, value in hadoop_conf(lake.uri, self.storage).items():
                self.session.conf.set(key, value)
            self._reached.add(lake.uri)
        return spark_uri(lake.table_uri(ref), self.storage)

    @staticmethod
    def _count(ref: TableRef, rows: DataFrame) -> int:
        try:
            return rows.count()
        except Exception as exc:
            raise SparkModelError(ref, exc) from exc

    def _view(self, lake: Lake, ref: TableRef) -> str:
        """A temporary view of the table at its current version; a bronze table never ingested reads as empty."""
        spark, view = self.session, f"{ref.layer}__{ref.name}"
        if lake.exists(ref):
            spark.read.format("delta").load(self._uri(lake, ref)).createOrReplaceTempView(view)
        elif ref.layer == "bronze":
            spark.createDataFrame(pa.Table.from_pylist([], schema=BRONZE_SCHEMA)).createOrReplaceTempView(view)
        else:
            raise ValueError(f"reads {ref}, which has not been built")
        return view

    # -- write -----------------------------------------------------------------------------------
    def write(
        self, lake: Lake, model: Model, kept: Any, start: date, end: date, dropped: pa.Table | None = None
    ) -> dict[date, int]:
        try:
            return self._write(lake, model, kept, start, end, dropped)
        except Exception as exc:
            raise SparkModelError(model.ref, exc) from exc

    def _write(
        self, lake: Lake, model: Model, kept: Any, start: date, end: date, dropped: pa.Table | None
    ) -> dict[date, int]:
        from pyspark.sql import functions as F

        data: DataFrame = kept
        contract, ref, uri = model.contract, model.ref, self._uri(lake, model.ref)
        mode, part = contract.write_mode, contract.partition_by
        whole = (start, end) == ALL_TIME or not lake.exists(ref)
        if mode in ("upsert", "merge"):
            assert contract.version_column is not None
            data = self._newest(
                self._with_dropped(data, dropped, contract.keys), contract.keys, contract.version_column
            )
        if not whole and mode != "full":
            # Into the table's own types: a table written by the other engine (DuckDB sums into DECIMAL(38, s),
            # Spark into DECIMAL(p + 10, s)) takes the run's rows without a schema change.
            schema = self.session.read.format("delta").load(uri).schema
            columns = [F.col(f"`{f.name}`").cast(f.dataType).alias(f.name) for f in schema.fields]
            data = data.select(columns + [DEAD] * (DEAD in data.columns))
        if whole and DEAD in data.columns:  # a table written whole holds its live rows only
            data = data.where(~F.col(DEAD)).drop(DEAD)
        data = data.persist()
        try:
            # One pass gives both the partitions the rows fall in and, for an overwrite, the rows each holds now.
            counts = {r[0]: r[1] for r in data.groupBy(part).count().collect()} if part else {}
            if mode == "full" or whole:
                writer = data.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
                (writer.partitionBy(part) if part else writer).save(uri)
            elif mode == "overwrite_partitions":
                assert part is not None
                where = f"`{part}` >= '{start.isoformat()}' AND `{part}` <= '{end.isoformat()}'"
                data.write.format("delta").mode("overwrite").option("replaceWhere", where).save(uri)
            elif mode == "merge":
                assert contract.version_column is not None
                self._merge(data, uri, contract.keys, None, contract.version_column, [])
            elif counts:
                assert part is not None and contract.version_column is not None
                self._merge(data, uri, contract.keys, part, contract.version_column, list(counts))
                merged = self.session.read.format("delta").load(uri).where(F.col(part).isin(list(counts)))
                # A partition a dropped version emptied holds no row now.
                counts = {day: 0 for day in counts} | {r[0]: r[1] for r in merged.groupBy(part).count().collect()}
        finally:
            data.unpersist()
        self.session.catalog.clearCache()  # the run's rows, persisted by compute, are written now
        return counts

    def _with_dropped(self, data: DataFrame, dropped: pa.Table | None, keys: list[str]) -> DataFrame:
        """The run's rows and, flagged ``DEAD``, the dropped rows that name a whole key (versions that take their
        key out of the table when newest, as on DuckDB); the rows alone when there are none."""
        from pyspark.sql import functions as F

        dead = tombstones(dropped, keys)
        if dead is None:
            return data
        rows = self.session.createDataFrame(dead)
        rows = rows.select([F.col(f"`{f.name}`").cast(f.dataType).alias(f.name) for f in data.schema.fields])
        return data.withColumn(DEAD, F.lit(False)).unionByName(rows.withColumn(DEAD, F.lit(True)))

    def _newest(self, data: DataFrame, keys: list[str], version: str) -> DataFrame:
        """The newest row per key of a run's rows (the same clause as DuckDB's upsert; a dropped version wins a
        tie)."""
        data.createOrReplaceTempView("__incoming")
        quoted = [f'"{k}"' for k in keys]  # DuckDB's quoting: the clause is DuckDB's, rendered for Spark
        # Columns named: sqlglot rewrites QUALIFY as a filter over a subquery, whose ``SELECT *`` would keep its
        # row-number column.
        columns = ", ".join(f'"{c}"' for c in data.columns)
        order = f'"{version}" DESC NULLS LAST' + f', "{DEAD}" DESC' * (DEAD in data.columns)
        newest = first_per_key(f"SELECT {columns} FROM __incoming", quoted, order)
        return self.session.sql(to_spark(newest, _unused))

    def _merge(
        self, data: DataFrame, uri: str, keys: list[str], part: str | None, version: str, touched: list[Any]
    ) -> None:
        """Upsert into the partitions ``touched`` (without ``part``, a merge: into the whole table): a key's row is
        replaced by a version as new or newer, as on DuckDB (the run's row wins a tie; a NULL version loses to any
        other), and deleted by such a version a rule dropped (``DEAD``)."""
        data.createOrReplaceTempView("__upsert")
        days = ", ".join(f"'{d.isoformat()}'" for d in touched)
        on = " AND ".join([f"t.`{k}` = s.`{k}`" for k in keys] + [f"t.`{part}` IN ({days})"] * (part is not None))
        newer = f"t.`{version}` IS NULL OR s.`{version}` >= t.`{version}`"
        if DEAD not in data.columns:
            actions = f"WHEN MATCHED AND ({newer}) THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
        else:
            columns = [c for c in data.columns if c != DEAD]
            update = ", ".join(f"t.`{c}` = s.`{c}`" for c in columns)
            names, values = ", ".join(f"`{c}`" for c in columns), ", ".join(f"s.`{c}`" for c in columns)
            actions = (
                f"WHEN MATCHED AND s.`{DEAD}` AND ({newer}) THEN DELETE "
                f"WHEN MATCHED AND ({newer}) THEN UPDATE SET {update} "
                f"WHEN NOT MATCHED AND NOT s.`{DEAD}` THEN INSERT ({names}) VALUES ({values})"
            )
        self.session.sql(f"MERGE INTO delta.`{uri}` t USING __upsert s ON {on} {actions}")


class SparkModelError(RuntimeError):
    """A model Spark could not run: which model, and Spark's reason (the list of such models is in the docs)."""

    def __init__(self, ref: TableRef, cause: Exception) -> None:
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        super().__init__(f"{ref} cannot run on Spark: {reason}")
        self.ref = ref


def _unused(layer: str, name: str) -> str:
    raise ValueError(f"{layer}.{name}: an upsert reads only the run's rows")


def _empty_quarantine() -> pa.Table:
    from retreasure.quality.checks import QUARANTINE_SCHEMA

    return pa.Table.from_pylist([], schema=QUARANTINE_SCHEMA)


_SESSION_LOCK = threading.Lock()


def _end_local_jvm(context: Any) -> None:
    """End the JVM pyspark started for a local session: pyspark keeps it until the Python process exits, and a
    process that is killed leaves it running."""
    gateway = context._gateway
    if gateway is None:
        return
    process = getattr(gateway, "proc", None)
    gateway.shutdown()
    context._gateway = context._jvm = None
    if process is None:
        return
    process.stdin.close()  # the gateway server exits when its input ends
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _cluster_session(spark: type[SparkSession], conf: dict[str, str] | None) -> SparkSession:
    """On a Databricks cluster: the cluster's own session (its Delta, its workers, its storage access); the
    engine's SQL settings are set on it, the ones only a JVM start can take are the cluster spec's."""
    session = spark.builder.getOrCreate()
    for key, value in {**SESSION_CONF, **(conf or {})}.items():
        if session.conf.isModifiable(key):
            session.conf.set(key, value)
    log.info("spark session of the cluster", extra={"version": session.version})
    return session


def spark_session(
    master: str, driver_memory: str, shuffle_partitions: int, jars_dir: Path, conf: dict[str, str] | None = None
) -> SparkSession:
    """The process's Spark session with Delta, started on first use (its pinned jars fetched then); ``conf``
    adds to the engine's settings (``spark_dialect.SESSION_CONF``) or overrides them."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable("the Spark engine needs pyspark: pip install 'retreasure[spark]'") from exc
    with _SESSION_LOCK:
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
            return _cluster_session(SparkSession, conf)
        jars = maven.ensure_jars(jars_dir.resolve() / JARS_LOCK.stem, JARS_LOCK)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = (
            SparkSession.builder.master(master)
            .appName("retreasure")
            .config("spark.jars", ",".join(str(jars / j.file_name) for j in maven.pinned_jars(JARS_LOCK)))
            .config("spark.driver.memory", driver_memory)
            .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        )
        for key, value in {**SESSION_CONF, **(conf or {})}.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        # A failing query is raised with its model's name (SparkModelError); pyspark's own copy of it, a page of
        # JVM stack in the log, says nothing more.
        logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
        log.info("spark session started", extra={"master": master, "version": session.version})
        return session
