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


# A table written outside the models (machine learning's): its name, contract and the tables it is made from.
Documented = tuple[TableRef, Contract, Iterable[TableRef]]


def render(ml_tables: Iterable[Documented] = ()) -> str:
    """The dictionary of the models and, after them, of ``ml_tables`` (``ml.catalog.documented_tables``: the
    machine learning layer sits above this one, so its tables are handed in, not looked up)."""
    models = [_section(m.ref, m.contract, m.inputs) for m in load_models().values()]
    text = HEADER + "\n" + "\n\n".join(models) + "\n"
    if ml := [_section(*table) for table in ml_tables]:
        text += "\n" + ML_HEADER + "\n" + "\n\n".join(ml) + "\n"
    return text
