"""The data dictionary, generated from the contracts: one section per model, one line per column."""

from __future__ import annotations

from retreasure.engine.models import Model, load_models

HEADER = """# Data dictionary

Generated from the model contracts (`src/retreasure/models/<layer>/<name>.yml`) by `retreasure dictionary`;
do not edit by hand. KPI definitions are in [kpis.md](kpis.md).
"""


def _section(model: Model) -> str:
    c = model.contract
    lines = [
        f"## {model.ref}",
        "",
        c.description,
        "",
        f"- Grain: {c.grain}",
        f"- Keys: {', '.join(c.keys) or '-'}",
        f"- Written: {c.write_mode}" + (f", partitioned by `{c.partition_by}`" if c.partition_by else ""),
        f"- Reads: {', '.join(f'`{i}`' for i in model.inputs) or '-'}",
    ]
    if c.checks:
        checks = ", ".join(f"{getattr(k, 'name', None) or k.check} ({k.severity})" for k in c.checks)
        lines.append(f"- Checks: {checks}")
    lines += ["", "| column | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {text.replace('|', '/')} |" for name, text in c.columns.items()]
    return "\n".join(lines)


def render() -> str:
    return HEADER + "\n" + "\n\n".join(_section(m) for m in load_models().values()) + "\n"
