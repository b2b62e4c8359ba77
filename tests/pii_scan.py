"""Scan Parquet files cell by cell for clear values that must never be there."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq


def clear_values_in_parquet(folder: Path, needles: list[str]) -> list[str]:
    """Every (file, needle) where a string cell of a Parquet file under ``folder`` contains a needle.

    A phone number is also looked for by its digits alone, whatever the separators it was stored with
    (``+44 20 7946 0958`` is found as ``+44-20-7946-0958`` and ``442079460958`` too)."""
    found = []
    files = sorted(folder.rglob("*.parquet"))
    assert files, f"no Parquet files under {folder}"
    phones = {needle: digits for needle in needles if "@" not in needle and len(digits := _digits(needle)) >= 7}
    for path in files:
        table = pq.read_table(path)
        for column in table.column_names:
            if table.schema.field(column).type not in ("string", "large_string"):
                continue
            text = "\n".join(v for v in table.column(column).to_pylist() if v)
            found += [f"{path.name}: {needle}" for needle in needles if needle in text]
            if phones:
                digit_runs = "\n".join(re.findall(r"[0-9][0-9 ().+/-]*[0-9]", text))
                digit_text = "\n".join(_digits(run) for run in digit_runs.split("\n"))
                found += [f"{path.name}: {needle} (as digits)" for needle, d in phones.items() if d in digit_text]
    return found


def _digits(text: str) -> str:
    return re.sub(r"[^0-9]", "", text)
