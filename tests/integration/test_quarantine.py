"""With the simulator's faults on, every injected bad record is in quarantine with its rule and reason, and
nothing else is; the faults that do not make a record bad (duplicates, late updates, schema drift, 429/5xx)
change no number downstream.

Everything is read from the session's ``gold_lake`` (the faulty business ingested and fully built); the
expectations come from the simulator's fault log (``truth["faults"]``), never from the lake itself.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import pytest

from retreasure.connectors.base import Entity, load_sources
from retreasure.lake import Lake, TableRef
from retreasure_sim.files.drop import renamed
from retreasure_sim.model import Fault, Truth

BAD = frozenset({"malformed", "truncated"})  # the record itself is unusable: it must be quarantined
HARMLESS = frozenset({"duplicate", "late_update", "schema_drift"})  # a good record, sent oddly: it must count once
# The entity a marketplace's orders arrive in (the fault log says "orders" for every channel).
ORDER_ENTITY = {"shopify": "orders", "ebay": "orders", "etsy": "receipts"}
# The names a re-delivered file takes beside the original (retreasure_sim/files/drop.py): the same records may land
# from any of them, whichever was read first.
REDELIVERIES = ("resent", "dup")


def is_wire(fault: Fault) -> bool:
    """A fault of a marketplace API (keyed by order id) rather than of a dropped file (keyed by its path)."""
    return fault.source in ORDER_ENTITY


def entity_of(fault: Fault) -> Entity:
    name = ORDER_ENTITY[fault.source] if is_wire(fault) else fault.entity
    return next(e for e in load_sources()[fault.source].entities if e.name == name)


def table_of(fault: Fault) -> str:
    """The bronze (and bronze quarantine) table the faulty record belongs to."""
    return f"{fault.source}_{entity_of(fault).name}"


def file_family(relative: str) -> set[str]:
    """A dropped file and its re-deliveries: the origins its records can carry."""
    return {relative, *(renamed(relative, tag) for tag in REDELIVERIES)}


def rows(lake: Lake, sql: str, refs: list[TableRef], **params: Any) -> list[dict[str, Any]]:
    return lake.query(sql, refs, params or None).to_pylist()


def quarantined(lake: Lake) -> list[dict[str, Any]]:
    """Every row of every quarantine table (bronze's and the models'), with the table it sits in."""
    found = []
    for ref in lake.tables("quarantine"):
        for row in rows(lake, f"SELECT * FROM {ref}", [ref]):
            found.append({"table": ref.name, **row})
    return found


def strip(raw: str, entity: Entity) -> dict[str, Any] | None:
    """A JSON record without its business key and change time: what a broken copy shares with the good one."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    return {k: v for k, v in record.items() if k not in (entity.key, entity.updated_at)}


def order_id(record_key: str) -> str:
    """The channel's order id at the end of a landed key (Shopify keys are GIDs: gid://shopify/Order/<id>)."""
    return record_key.rsplit("/", 1)[-1]


def wire_matches(lake: Lake, faults: dict[int, Fault], rows_: list[dict[str, Any]]) -> dict[int, set[int]]:
    """Quarantined row index -> the (numbers of the) malformed wire faults it is the broken copy of.

    A broken copy is the order's good record with its key dropped or its change time garbled, so it is found
    by comparing everything else with the good records bronze landed for the faulty orders."""
    found: dict[int, set[int]] = defaultdict(set)
    for number, fault in faults.items():
        entity = entity_of(fault)
        ref = TableRef("bronze", table_of(fault))
        good = rows(lake, f"SELECT record_key, raw FROM {ref} WHERE error IS NULL", [ref])
        shapes = [strip(g["raw"], entity) for g in good if order_id(g["record_key"]) == fault.record_key]
        assert shapes, f"the good copy of {fault} did not land"
        for i, row in enumerate(rows_):
            if row["table"] == ref.name and "raw" in row and strip(row["raw"], entity) in shapes:
                found[i].add(number)
    return found


def file_matches(faults: dict[int, Fault], rows_: list[dict[str, Any]]) -> dict[int, set[int]]:
    """Quarantined row index -> the file faults it stands for: same file (or re-delivery), same kind of break."""
    found: dict[int, set[int]] = defaultdict(set)
    for number, fault in faults.items():
        for i, row in enumerate(rows_):
            if row["table"] != table_of(fault) or row.get("origin") not in file_family(fault.record_key):
                continue
            if (fault.kind == "truncated") == str(row["reason"]).startswith("truncated"):
                found[i].add(number)
    return found


@pytest.fixture(scope="module")
def faults(gold_lake: tuple[Truth, Lake]) -> dict[str, list[Fault]]:
    by_kind: dict[str, list[Fault]] = defaultdict(list)
    for fault in gold_lake[0]["faults"]:
        by_kind[fault.kind].append(fault)
    return by_kind


def test_every_fault_kind_the_simulator_injects_is_judged_here(faults: dict[str, list[Fault]]) -> None:
    assert set(faults) <= BAD | HARMLESS, f"a new kind of fault needs a verdict here: {set(faults) - BAD - HARMLESS}"
    assert set(faults) >= BAD, "the business must have bad records for this module to prove anything"
    assert {"duplicate", "schema_drift"} <= set(faults)
    assert {f.source for f in faults["malformed"] if is_wire(f)} and {f.source for f in faults["malformed"]} - set(
        ORDER_ENTITY
    ), "broken records both on the wire and in files"


def test_every_bad_record_is_quarantined_with_a_reason_and_nothing_else(
    gold_lake: tuple[Truth, Lake], faults: dict[str, list[Fault]]
) -> None:
    lake = gold_lake[1]
    bad = [f for kind in sorted(BAD) for f in faults[kind]]
    found = quarantined(lake)
    matched: dict[int, set[int]] = defaultdict(set)
    for index, hits in wire_matches(lake, {n: f for n, f in enumerate(bad) if is_wire(f)}, found).items():
        matched[index] |= hits
    for index, hits in file_matches({n: f for n, f in enumerate(bad) if not is_wire(f)}, found).items():
        matched[index] |= hits

    for row in found:
        assert str(row["rule"] or "").strip() and str(row["reason"] or "").strip(), row
    unexplained = [(r["table"], r.get("record_key"), r["reason"]) for i, r in enumerate(found) if not matched[i]]
    assert unexplained == [], "quarantined, yet no fault was injected there: a good record was rejected"
    ambiguous = [(found[i]["table"], [bad[n] for n in hits]) for i, hits in matched.items() if len(hits) > 1]
    assert ambiguous == []
    covered = {n for hits in matched.values() for n in hits}
    assert [f for n, f in enumerate(bad) if n not in covered] == [], "an injected bad record is not in quarantine"
    # One quarantined row per bad record, table by table: nothing twice, nothing extra.
    assert Counter(r["table"] for r in found) == Counter(table_of(f) for f in bad)


def test_bronze_flags_exactly_what_it_quarantines(gold_lake: tuple[Truth, Lake]) -> None:
    lake = gold_lake[1]
    flagged, kept = {}, {}
    for ref in lake.tables("bronze"):
        flagged[ref.name] = rows(lake, f"SELECT count(*) AS n FROM {ref} WHERE error IS NOT NULL", [ref])[0]["n"]
        q = TableRef("quarantine", ref.name)
        kept[ref.name] = lake.count(q)
    assert flagged == kept and sum(flagged.values()) > 0
    models = [ref for ref in lake.tables("quarantine") if ref.name.startswith(("silver_", "gold_"))]
    assert {str(ref): lake.count(ref) for ref in models if lake.count(ref)} == {}, "a bad record reached a model"


def test_duplicates_land_once_and_keys_stay_unique(
    gold_lake: tuple[Truth, Lake], faults: dict[str, list[Fault]]
) -> None:
    lake = gold_lake[1]
    orders = TableRef("silver", "orders")
    redelivered = 0
    for fault in faults["duplicate"]:
        if is_wire(fault):
            key = f"{fault.source}:{fault.record_key}"
            got = rows(lake, f"SELECT count(*) AS n FROM {orders} WHERE order_key = $key", [orders], key=key)
            assert got[0]["n"] == 1, fault
        else:
            ref = TableRef("bronze", table_of(fault))
            landed = rows(
                lake,
                f"SELECT count(*) AS n, count(DISTINCT record_hash) AS hashes FROM {ref} "
                "WHERE list_contains($o, origin)",
                [ref],
                o=sorted(file_family(fault.record_key)),
            )[0]
            assert landed["n"] == landed["hashes"], fault  # the second delivery added no record
            redelivered += landed["n"]
    assert redelivered > 0, "some file sent twice had records in it"
    dq = TableRef("ops", "dq_results")
    unique = rows(
        lake,
        f"SELECT table_name, check_name, failed FROM {dq} WHERE check_name LIKE 'unique(%' "
        "AND (table_name LIKE 'silver.%' OR table_name LIKE 'gold.%')",
        [dq],
    )
    assert unique and [u for u in unique if u["failed"]] == []


def truth_orders(truth: Truth) -> dict[str, Any]:
    return {f"{o.channel}:{o.channel_order_id}": o for o in truth["orders"] if o.channel in ORDER_ENTITY}


def test_drifted_and_late_records_land_whole_and_keep_their_numbers(
    gold_lake: tuple[Truth, Lake], faults: dict[str, list[Fault]]
) -> None:
    truth, lake = gold_lake
    expected = truth_orders(truth)
    orders = TableRef("silver", "orders")
    silver = {r["order_key"]: r for r in rows(lake, f"SELECT * FROM {orders} WHERE channel <> 'pos'", [orders])}
    for fault in faults["schema_drift"]:
        if is_wire(fault):
            key = f"{fault.source}:{fault.record_key}"
            want = expected[key]
            assert (silver[key]["total"], silver[key]["currency"]) == (want.total, want.currency), fault
        else:
            ref = TableRef("bronze", table_of(fault))
            family = sorted(file_family(fault.record_key))
            landed = rows(
                lake,
                f"SELECT count(*) FILTER (WHERE error IS NULL) AS good, count(*) FILTER (WHERE error IS NOT NULL "
                f"AND NOT starts_with(error, 'truncated')) AS broken FROM {ref} WHERE list_contains($o, origin)",
                [ref],
                o=family,
            )[0]
            # A drifted file's records are all good, unless the broken-record fault hit the same file.
            spoiled = any(f.record_key == fault.record_key for f in faults["malformed"])
            assert landed["good"] > 0 and landed["broken"] == int(spoiled), fault
    for fault in faults["late_update"]:
        key = f"{fault.source}:{fault.record_key}"
        assert silver[key]["updated_ts"] >= datetime.fromisoformat(fault.detail), fault
        assert silver[key]["total"] == expected[key].total, fault


def test_throttling_and_server_errors_lose_no_order(gold_lake: tuple[Truth, Lake]) -> None:
    truth, lake = gold_lake
    log = TableRef("ops", "ingest_log")
    assert rows(lake, f"SELECT sum(retries) AS n FROM {log}", [log])[0]["n"] > 0, "the 429/5xx faults were on"
    orders = TableRef("silver", "orders")
    keys = rows(lake, f"SELECT order_key FROM {orders} WHERE channel <> 'pos'", [orders])
    assert sorted(r["order_key"] for r in keys) == sorted(truth_orders(truth))


def test_quarantine_reads_as_one_query(gold_lake: tuple[Truth, Lake], faults: dict[str, list[Fault]]) -> None:
    """What an operator runs to see what was rejected, where and why."""
    lake = gold_lake[1]
    refs = lake.tables("quarantine")
    sql = " UNION ALL ".join(
        f"SELECT '{ref.name}' AS quarantine_table, rule, reason, count(*) AS n FROM {ref} GROUP BY ALL" for ref in refs
    )
    summary = rows(lake, f"SELECT * FROM ({sql}) ORDER BY ALL", refs)
    assert all(r["rule"] and r["reason"] for r in summary), summary
    bad = [f for kind in sorted(BAD) for f in faults[kind]]
    assert sum(r["n"] for r in summary) == len(bad)
    assert {r["quarantine_table"] for r in summary} == {table_of(f) for f in bad}
