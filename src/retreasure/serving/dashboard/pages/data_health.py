"""Data health: did every source land, did every check pass, what is held in quarantine, what is failing, and how
fresh is each table."""

from __future__ import annotations

import streamlit as st

from retreasure.serving.dashboard import data, view

ALL = ""

view.header(
    "Data health",
    "Can the numbers be trusted today? The latest ingest of every source, the latest build's checks, the rows "
    "held back in quarantine, open incidents and when each table was last written.",
)
source = st.columns([1, 2])[0].selectbox(
    "Source",
    [ALL, *data.read(data.sources)],
    format_func=lambda s: "All sources" if s == ALL else s,
    key="health_source",
    help="Narrows the ingest log and the quarantine to one source system.",
)
chosen = source or None
ingest = data.read(data.latest_ingest, chosen)
checks = data.read(data.dq_latest)
held = data.read(data.quarantine, chosen)
incidents = data.read(data.incidents)
passed = sum(c["passed"] for c in checks)
view.metrics(
    [
        ("Records landed (latest runs)", view.count(sum(r["new_records"] or 0 for r in ingest)), None),
        ("Failed ingests", view.count(sum(r["status"] != "success" for r in ingest)), None),
        ("Rows in quarantine", view.count(sum(r["rows"] for r in held)), None),
        ("DQ checks passed", view.rate(passed / len(checks) if checks else None, 1), None),
        ("Failed checks", view.count(len(checks) - passed), None),
        ("Open incidents", view.count(sum(i["status"] == "open" for i in incidents)), None),
    ],
    help_texts={
        "Records landed (latest runs)": "New records in bronze from each entity's latest ingest run.",
        "DQ checks passed": "Checks of the latest build that passed (warnings included).",
    },
)

st.subheader("Ingest log")
st.caption("Each source entity's latest run. Malformed records are kept in bronze and copied to quarantine.")
if ingest:
    view.table(view.frame(ingest))

st.subheader("Quarantine")
st.caption("Rows held back, by table, rule and reason (the rows themselves may hold PII and stay in the lake).")
if held:
    view.table(view.frame(held), height=300)
else:
    st.success("Nothing in quarantine.")

st.subheader("Data quality")
failing = [c for c in checks if not c["passed"]]
st.caption(f"{len(checks):,} checks in the latest build; {len(failing):,} failed.")
if failing:
    view.table(view.frame(failing), height=300)
elif checks:
    st.success("Every check of the latest build passed.")

st.subheader("Incidents")
if incidents:
    view.table(view.frame(incidents))
else:
    st.success("No incidents recorded.")

st.subheader("Freshness")
st.caption("When each table was last written (Delta commit time, UTC), its version and its rows.")
view.table(view.frame(data.read(data.freshness)), height=320)
