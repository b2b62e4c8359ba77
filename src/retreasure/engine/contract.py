"""A model's contract: the YAML beside its SQL, saying what the table promises (grain, keys, partitioning,
write mode, checks, column meanings). The runner and the checks read it; the data dictionary is made of it.
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


Check = Annotated[
    NotNull | AcceptedValues | Expression | Unique | Relationship | RowCount, Field(discriminator="check")
]
ROW_RULES = (NotNull, AcceptedValues, Expression)

WriteMode = Literal["full", "merge", "overwrite_partitions", "upsert"]


class Contract(BaseModel):
    """What a model promises. ``upsert`` keeps the latest version per key within the partitions it touches."""

    model_config = ConfigDict(extra="forbid")

    description: str
    grain: str
    keys: list[str]
    write_mode: WriteMode
    partition_by: str | None = None
    version_column: str | None = None  # upsert: the newest value wins
    lookback_days: int = 0  # incremental runs re-read this many days before the window
    checks: list[Check] = Field(default_factory=list)
    columns: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        if self.write_mode in ("overwrite_partitions", "upsert") and not self.partition_by:
            raise ValueError(f"write_mode {self.write_mode} needs partition_by")
        if self.write_mode == "upsert" and not self.version_column:
            raise ValueError("write_mode upsert needs version_column")
        if self.write_mode in ("merge", "upsert") and not self.keys:
            raise ValueError(f"write_mode {self.write_mode} needs keys")
        return self

    @property
    def partitioned(self) -> bool:
        """Written by partition: a run for a window rewrites only the partitions it touches."""
        return self.write_mode in ("overwrite_partitions", "upsert")

    @property
    def row_rules(self) -> list[NotNull | AcceptedValues | Expression]:
        return [c for c in self.checks if isinstance(c, ROW_RULES)]

    @property
    def table_checks(self) -> list[Unique | Relationship | RowCount]:
        return [c for c in self.checks if not isinstance(c, ROW_RULES)]

    @classmethod
    def load(cls, path: Path) -> Contract:
        try:
            text = path.read_text()
            # The C parser where PyYAML has it: every build loads every contract, ten times faster so.
            data = yaml.load(text, Loader=yaml.CSafeLoader) if hasattr(yaml, "CSafeLoader") else yaml.safe_load(text)
            return cls.model_validate(data)
        except Exception as exc:
            raise ValueError(f"contract {path}: {exc}") from exc
