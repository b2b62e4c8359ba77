"""The data dictionary, generated from the contracts: one section per model, one line per column; then the
tables machine learning writes, from theirs."""

from __future__ import annotations

from collections.abc import Iterable

from retreasure.contracts.model import Contract
from retreasure.engine.models import load_models
from retreasure.lake.store import TableRef

HEADER = """# Data dictionary

Generated from the model contracts (`src/retreasure/models/<layer>/<name>.yml`) by `retreasure dictionary`;
do not edit by hand. KPI definitions are in [kpis.md](kpis.md).
"""

ML_HEADER = """# Machine learning tables

Written by the forecast and recommendation runs (`retreasure ml forecast`, `retreasure ml recommend`, the weekly
Dagster jobs; docs/ml.md), from the contracts in `src/retreasure/ml/contracts/<name>.yml`.
"""


def _section(ref: object, c: Contract, inputs: Iterable[object]) -> str:
    lines = [
        f"## {ref}",
        "",
        c.description,
        "",
        f"- Grain: {c.grain}",
        f"- Keys: {', '.join(c.keys) or '-'}",
        f"- Written: {c.write_mode}" + (f", partitioned by `{c.partition_by}`" if c.partition_by else ""),
        f"- Reads: {', '.join(f'`{i}`' for i in inputs) or '-'}",
    ]
    if c.checks:
        checks = ", ".join(f"{getattr(k, 'name', None) or k.check} ({k.severity})" for k in c.checks)
        lines.append(f"- Checks: {checks}")
    lines += ["", "| column | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {text.replace('|', '/')} |" for name, text in c.columns.items()]
    return "\n".join(lines)


def _ml_sections() -> list[str]:
    from retreasure.ml.catalog import READS
    from retreasure.ml.tables import contract

    ordered: list[TableRef] = sorted(READS, key=str)
    return [_section(ref, contract(ref), READS[ref]) for ref in ordered]


def render() -> str:
    models = [_section(m.ref, m.contract, m.inputs) for m in load_models().values()]
    return HEADER + "\n" + "\n\n".join(models) + "\n\n" + ML_HEADER + "\n" + "\n\n".join(_ml_sections()) + "\n"
