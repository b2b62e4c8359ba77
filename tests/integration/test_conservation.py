"""Conservation: whatever a field of a bronze record holds, the record ends in a silver model or in that model's
quarantine with a rule and a reason, and the build goes on.

Each generated example spoils one field of one real record of every bronze table silver reads (a missing field,
a wrong JSON type, an unparseable number or date, an unknown enum value, a quoted newline, an empty string, a huge
value), lands the spoilt record as a real bronze row (BronzeWriter into a Delta lake, newest version of its key)
beside a few good ones, and builds every silver model with the engine.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from retreasure.bronze.landing import BronzeWriter, bronze_table
from retreasure.bronze.pii import PiiMasker
from retreasure.connectors.base import Entity, RawRecord, load_sources
from retreasure.engine.build import build
from retreasure.engine.models import load_models
from retreasure.lake import Lake, TableRef
from retreasure.quality.checks import quarantine_of
from retreasure_sim.model import Truth
from tests.conftest import HMAC_KEY, VAULT_KEY

MODELS = load_models()
SILVER = [ref for ref in MODELS if ref.layer == "silver"]
# bronze table -> the silver models that declare it as a source
FED: dict[str, list[TableRef]] = {}
for _ref, _model in MODELS.items():
    for _source in _model.contract.sources:
        FED.setdefault(_source.table, []).append(_ref)
ENTITIES: dict[str, tuple[str, Entity]] = {
    str(bronze_table(name, entity)): (name, entity)
    for name, source in load_sources().items()
    for entity in source.entities
}
GOOD_PER_TABLE = 3
HUGE = "9" * 100_000


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every field of a JSON record, nested ones and the first item of each list included."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))] or [path]
    if isinstance(value, list) and value:
        return [path, *_leaves(value[0], (*path, 0))]
    return [path]


def _spoil(record: Any, path: tuple[Any, ...], kind: str) -> Any:
    """The record with the field at ``path`` spoilt the ``kind`` way (a copy)."""
    record = json.loads(json.dumps(record))
    if not path:
        return record
    parent = record
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    old = parent[last]
    new: Any = {
        "wrong type": {"unexpected": [1, 2]} if not isinstance(old, dict) else "text",
        "unparseable": "12,5e-x" if not isinstance(old, str) or old[:1].isdigit() else "2025-13-45T99:99",
        "unknown enum": "UNKNOWN_VALUE",
        "quoted newline": f"{str(old)[:1]}\n{str(old)[1:]}",
        "empty": "",
        "huge": HUGE if isinstance(old, str) else 10**30,
    }.get(kind)
    if kind == "missing":
        if isinstance(parent, dict):
            del parent[last]
        else:
            parent.pop(last)
    else:
        parent[last] = new
    return record


def _field(record: Any) -> st.SearchStrategy[tuple[Any, ...]]:
    """A field of the record: a top-level one as often as a nested one, so that the few fields that decide where a
    record goes (its type, its id) are drawn often, not drowned among a payload's many nested leaves."""
    leaves = _leaves(record)
    top = sorted({path[:1] for path in leaves}, key=str)
    return st.one_of(st.sampled_from(top), st.sampled_from(leaves))


KINDS = ["missing", "wrong type", "unparseable", "unknown enum", "quoted newline", "empty", "huge"]


class Samples(dict[str, list[dict[str, Any]]]):
    """Good records per bronze table; shown by their count, not their payloads, when an example fails."""

    def __repr__(self) -> str:
        return f"<good records of {len(self)} bronze tables>"


@pytest.fixture(scope="module")
def samples(bronze_lake: tuple[Truth, Lake]) -> Samples:
    """A few good newest records of every bronze table a silver model reads (fx rates too, unspoilt)."""
    lake = bronze_lake[1]
    found = Samples()
    for table in [*FED, "bronze.ecb_fx_rates"]:
        ref = TableRef.parse(table)
        found[table] = lake.query(
            f"SELECT record_key, record_updated_at, partition_date, raw, origin FROM {ref} WHERE error IS NULL "
            "QUALIFY row_number() OVER (PARTITION BY record_key ORDER BY ingested_at DESC) = 1 "
            f"ORDER BY record_key LIMIT {GOOD_PER_TABLE if table != 'bronze.ecb_fx_rates' else 1000}",
            [ref],
        ).to_pylist()
        assert found[table], f"{table} has no good record to start from"
    return found


def _land(lake: Lake, table: str, rows: list[dict[str, Any]], payloads: list[Any], at: datetime) -> None:
    source, entity = ENTITIES[table]
    writer = BronzeWriter(lake, PiiMasker(HMAC_KEY, VAULT_KEY), source, entity, uuid.uuid4().hex, at)
    for row, payload in zip(rows, payloads, strict=True):
        # The record's own key and change time: the spoilt copy is the newest version of a good bronze record.
        writer.add(
            RawRecord(
                payload,
                row["origin"] or "test",
                None,
                row["record_key"],
                row["record_updated_at"],
                row["partition_date"],
            )
        )
    writer.flush()


def _placed(lake: Lake, model: TableRef, lineage: str) -> set[str]:
    """The bronze record keys a model's rows and its quarantined rows (with a reason) name."""
    keys: set[str] = set()
    values = lake.query(f'SELECT to_json("{lineage}") AS v FROM {model}', [model]).to_pylist()
    quarantine = quarantine_of(model)
    if lake.exists(quarantine):
        values += lake.query(
            f"SELECT json_extract(row_json, '$.{lineage}') AS v FROM {quarantine} WHERE reason <> '' AND rule <> ''",
            [quarantine],
        ).to_pylist()
    for row in values:
        value = json.loads(row["v"]) if row["v"] is not None else None
        keys |= set(value) if isinstance(value, list) else {value}
    return keys


# An example lands and builds a whole lake (~10 s): no shrinking, the draws of a failing one are printed as drawn.
@settings(max_examples=10, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(data=st.data())
def test_every_newest_record_is_in_its_model_or_quarantined_with_a_reason(
    samples: Samples, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    lake = Lake(Path(tmp_path_factory.mktemp("conservation")) / "lake")
    now = datetime.now(UTC)
    spoilt: dict[str, tuple[str, tuple[Any, ...], str]] = {}
    for table, rows in samples.items():
        payloads = [json.loads(r["raw"]) if r["raw"].startswith("{") else r["raw"] for r in rows]
        if table in FED:
            # The spoilt record replaces its good self: no older good version of its key is left to stand in.
            index = data.draw(st.integers(0, len(rows) - 1), label=f"{table} record")
            path = data.draw(_field(payloads[index]), label=f"{table} field")
            kind = data.draw(st.sampled_from(KINDS), label=f"{table} spoilt as")
            payloads[index] = _spoil(payloads[index], path, kind)
            spoilt[table] = (rows[index]["record_key"], path, kind)
        _land(lake, table, rows, payloads, now)

    runs = build(lake, select=SILVER)

    ran = {run.ref for run in runs}
    for table, models in FED.items():
        for ref in models:
            assert ref in ran, f"{ref} did not run"
            run = next(r for r in runs if r.ref == ref)
            failed = {c.check_name: c.detail for c in run.checks if c.blocking}
            assert not failed, (ref, failed, spoilt.get(table))
        newest = lake.query(
            f"SELECT DISTINCT record_key FROM {table} WHERE error IS NULL", [TableRef.parse(table)]
        ).to_pylist()
        placed = set().union(
            *(_placed(lake, ref, s.lineage) for ref in models for s in MODELS[ref].contract.sources if s.table == table)
        )
        missing = {r["record_key"] for r in newest} - placed
        assert not missing, (table, missing, spoilt.get(table))
