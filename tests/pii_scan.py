"""Scan Parquet files cell by cell for clear values that must never be there."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


def clear_values_in_parquet(folder: Path, needles: list[str]) -> list[str]:
    """Every (file, needle) where a string cell of a Parquet file under ``folder`` contains a needle."""
    found = []
    files = sorted(folder.rglob("*.parquet"))
    assert files, f"no Parquet files under {folder}"
    for path in files:
        table = pq.read_table(path)
        for column in table.column_names:
            if table.schema.field(column).type not in ("string", "large_string"):
                continue
            text = "\n".join(v for v in table.column(column).to_pylist() if v)
            found += [f"{path.name}: {needle}" for needle in needles if needle in text]
    return found
