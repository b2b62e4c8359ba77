"""The live tile: the web shop's day so far, rerun on its own every few seconds without reloading the page.

It reads through the read layer like every other part of the dashboards, so a micro-build's new Delta version
of gold.mart_web_daily is what the next rerun shows; the rest of the page is not rerun.
"""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from retreasure.serving import queries
from retreasure.serving.dashboard import data, view

REFRESH = timedelta(seconds=10)
HELP = {
    "Web orders today": "Orders completed on the web shop this UTC day (the day of the newest event).",
    "Web revenue today (EUR)": "Net sales of those orders (before tax, shipping and refunds), EUR at the day's "
    "ECB rate.",
    "Web sessions today": "Sessions started this day (30 minutes without an event end one; open ones still grow).",
    "Web conversion today": "Sessions started this day that completed an order.",
}


def age(seconds: float | None) -> str:
    """How long ago the newest event was, in the largest unit that keeps it readable."""
    if seconds is None:
        return "no event yet"
    if seconds < 1:
        return "just now"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{int(seconds // size):,} {unit} ago"
    return f"{int(seconds)} s ago"


@st.fragment(run_every=REFRESH)
def tile() -> None:
    """Today so far on the web shop, and how fresh it is (the sidebar's filters do not apply)."""
    with st.container(border=True, key="live_tile"):
        try:
            now = data.read(queries.realtime_overview, top=5)
        except data.NotBuilt as missing:
            view.not_built(missing)
            return
        day = now["day"]
        st.subheader(f"Today so far · {day:%d %b %Y} (UTC)" if day else "Today so far")
        view.metrics(
            [
                ("Web orders today", view.count(now["orders"]), None),
                ("Web revenue today (EUR)", view.eur(now["revenue"]), None),
                ("Web sessions today", view.count(now["sessions"]), None),
                ("Web conversion today", view.rate(now["conversion_rate"]), None),
            ],
            help_texts=HELP,
            per_row=4,
        )
        newest = now["newest_event_ts"]
        top = ", ".join(p["title"] or p["sku"] for p in now["top_products"]) or "none yet"
        st.caption(
            f"Updated {age(now['freshness_seconds'])}"
            + (f" (newest event {newest:%d %b %Y %H:%M:%S} UTC)" if newest else "")
            + f". Most viewed: {top}. Refreshes every {int(REFRESH.total_seconds())} s; the web shop only."
        )
