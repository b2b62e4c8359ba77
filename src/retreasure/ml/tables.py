"""The tables machine learning writes are held to contracts as the SQL models are: ``contracts/<name>.yml``
beside this module gives each its meaning, grain, keys, checks and column docs (the data dictionary's source)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pyarrow as pa

from retreasure.contracts.model import Contract
from retreasure.lake.store import Lake, TableRef
from retreasure.quality.checks import apply_row_rules, quarantine_of, record_results, run_table_checks

CONTRACTS_DIR = Path(__file__).parent / "contracts"


def contract(ref: TableRef) -> Contract:
    """The contract of a table machine learning writes."""
    return Contract.load(CONTRACTS_DIR / f"{ref.name}.yml")


def write_checked(
    lake: Lake, ref: TableRef, table: pa.Table, run_id: str, mode: Literal["overwrite", "append"]
) -> None:
    """Write a table under its contract, as the engine writes a model: rows breaking an error-level row rule to
    quarantine with the reason, the rest written, then the table checks; every result in ``ops.dq_results``."""
    rules = contract(ref)
    kept, _, quarantined, results = apply_row_rules(table, rules, str(ref), run_id)
    if quarantined.num_rows:
        lake.append(quarantine_of(ref), quarantined)
    if mode == "overwrite":
        lake.overwrite(ref, kept)
    else:
        lake.append(ref, kept)
    results += run_table_checks(lake, ref, rules, run_id)
    record_results(lake, results)
    failed = [f"{r.check_name}: {r.detail}" for r in results if r.blocking]
    if failed:
        raise ValueError(f"{ref} failed its checks: {'; '.join(failed)}")
