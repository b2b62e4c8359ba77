"""A model's contract: the YAML beside its SQL, saying what the table promises (grain, keys, partitioning,
write mode, checks, column meanings). The engine builds by it, the checks judge by it; the data dictionary is
made of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

Severity = Literal["error", "warn"]


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid")
    severity: Severity = "error"
    description: str = ""


class NotNull(_Check):
    """Row rule: these columns always have a value. Failing rows go to quarantine."""

    check: Literal["not_null"]
    columns: list[str]


class AcceptedValues(_Check):
    """Row rule: the column holds one of the listed values. Failing rows go to quarantine."""

    check: Literal["accepted_values"]
    column: str
    values: list[str | int | bool]


class Expression(_Check):
    """Row rule: a SQL boolean that every row satisfies (an invariant such as total = lines + tax)."""

    check: Literal["expression"]
    name: str
    expression: str


class Unique(_Check):
    """Table check: no two rows share these columns."""

    check: Literal["unique"]
    columns: list[str]


class Relationship(_Check):
    """Table check: every value of ``column`` exists in ``to`` (``layer.table.column``)."""

    check: Literal["relationships"]
    column: str
    to: str


class RowCount(_Check):
    """Table check: the table holds at least ``min`` rows."""

    check: Literal["row_count"]
    min: int = 1


class BronzeSource(BaseModel):
    """A bronze table a model is fed from: which of its records the model answers for, and the model column that
    names, on each row, the bronze record (or records) it came from."""

    model_config = ConfigDict(extra="forbid")
    table: str  # bronze.<name>
    # A SQL predicate over the newest version of a bronze record (its raw, record_key...): the records this model
    # must place, in its table or in its quarantine. Every record by default. The SQL must take the same records.
    records: str = "true"
    # The model column holding the bronze record_key of the row: VARCHAR, or VARCHAR[] for a row that several
    # records make (a receipt summed from its lines).
    lineage: str = "source_record_key"

    @property
    def ref(self) -> tuple[str, str]:
        layer, name = self.table.split(".")
        return layer, name


class Conservation(_Check):
    """Table check, made from the contract's ``sources``: each newest bronze record a source's ``records``
    predicate takes (in the run's window) is in the model or in its quarantine table with a rule and a reason."""

    check: Literal["conservation"] = "conservation"
    sources: list[BronzeSource]


class ChangedInput(BaseModel):
    """How a rebuilt input reaches a partitioned model beyond the model's own days: an unpartitioned input (a
    dimension, rebuilt whole), or a partitioned one whose partition is another day than the model's (an order's
    day, read by its refunds on their refund days). Which of its columns the model reads (a change elsewhere in
    the row changes nothing here), and ``days``, SQL over ``changed`` (the rows, in those columns, that the
    input's run added or removed; of a partitioned input, in the windows its runs rewrote) and the model's other
    inputs naming the days of the model's window that read them (one column of days). A partitioned input also
    reaches the days of the partitions it wrote, as without a rule."""

    model_config = ConfigDict(extra="forbid")
    columns: list[str]
    days: str


Check = Annotated[
    NotNull | AcceptedValues | Expression | Unique | Relationship | RowCount, Field(discriminator="check")
]
ROW_RULES = (NotNull, AcceptedValues, Expression)

WriteMode = Literal["full", "overwrite_partitions", "upsert", "merge"]


class Contract(BaseModel):
    """What a model promises. ``upsert`` keeps the latest version per key within the partitions it touches;
    ``merge`` the latest version per key of a small table kept whole, a window's rows merged into it."""

    model_config = ConfigDict(extra="forbid")

    description: str
    grain: str
    keys: list[str]
    write_mode: WriteMode
    partition_by: str | None = None
    version_column: str | None = None  # upsert: the newest value wins
    lookback_days: int = 0  # incremental runs re-read this many days before the window
    # The span of one partition: ``month`` for a table partitioned by its months' first days (a monthly mart): a
    # window of days is widened to the whole months it touches, which a run then recomputes and rewrites.
    partition_period: Literal["day", "month"] = "day"
    # Partitions after the window whose rows read the window's (a month's growth against the month before): a
    # window's run recomputes and rewrites them too.
    lookahead: int = 0
    checks: list[Check] = Field(default_factory=list)
    sources: list[BronzeSource] = Field(default_factory=list)  # bronze tables read, checked for conservation
    columns: dict[str, str] = Field(default_factory=dict)
    # Per input (``layer.name``) whose rows reach days other than its own: the days a change of its rows touches.
    # An unpartitioned input that changed and is not named here rebuilds every partition of this model; a
    # partitioned one not named here reaches the days of the partitions it wrote.
    changed_inputs: dict[str, ChangedInput] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        if self.write_mode in ("overwrite_partitions", "upsert") and not self.partition_by:
            raise ValueError(f"write_mode {self.write_mode} needs partition_by")
        if self.write_mode == "merge" and self.partition_by:
            raise ValueError("write_mode merge keeps no partitions: a partitioned table is an upsert")
        if self.write_mode in ("upsert", "merge") and not self.version_column:
            raise ValueError(f"write_mode {self.write_mode} needs version_column")
        if self.write_mode in ("upsert", "merge") and not self.keys:
            raise ValueError(f"write_mode {self.write_mode} needs keys")
        if (self.partition_period != "day" or self.lookahead) and self.write_mode != "overwrite_partitions":
            raise ValueError("partition_period and lookahead: only an overwrite_partitions model rewrites windows")
        if self.changed_inputs and self.write_mode not in ("overwrite_partitions", "upsert"):
            raise ValueError("changed_inputs: only a partitioned model rebuilds some days of itself")
        for name in self.changed_inputs:
            if name.count(".") != 1:
                raise ValueError(f"changed_inputs: {name} is not a table (<layer>.<name>)")
        for source in self.sources:
            if not source.table.startswith("bronze.") or source.table.count(".") != 1:
                raise ValueError(f"source {source.table} is not a bronze table (bronze.<name>)")
            if self.columns and source.lineage not in self.columns:
                raise ValueError(f"source {source.table}: lineage column {source.lineage} is not documented")
        return self

    @property
    def partitioned(self) -> bool:
        """Written by partition: a run for a window rewrites only the partitions it touches."""
        return self.write_mode in ("overwrite_partitions", "upsert")

    @property
    def row_rules(self) -> list[NotNull | AcceptedValues | Expression]:
        return [c for c in self.checks if isinstance(c, ROW_RULES)]

    @property
    def table_checks(self) -> list[Unique | Relationship | RowCount | Conservation]:
        """The declared table checks, then conservation when the model names its bronze sources."""
        declared: list[Unique | Relationship | RowCount | Conservation] = [
            c for c in self.checks if not isinstance(c, ROW_RULES)
        ]
        return declared + ([Conservation(sources=self.sources)] if self.sources else [])

    @classmethod
    def load(cls, path: Path) -> Contract:
        try:
            text = path.read_text()
            # The C parser where PyYAML has it: every build loads every contract, ten times faster so.
            data = yaml.load(text, Loader=yaml.CSafeLoader) if hasattr(yaml, "CSafeLoader") else yaml.safe_load(text)
            return cls.model_validate(data)
        except Exception as exc:
            raise ValueError(f"contract {path}: {exc}") from exc
