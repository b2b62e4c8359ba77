"""Marketing: the web shop's funnel, campaigns with their spend and return, and the audiences' sizes."""

from __future__ import annotations

import streamlit as st

from retreasure.serving import queries
from retreasure.serving.dashboard import data, filters, view

FUNNEL = {"sessions": "Sessions", "product_views": "Product views", "carts": "Added to cart",
          "checkouts": "Checkouts", "orders": "Orders"}  # fmt: skip

chosen = filters.current()
view.header(
    "Marketing",
    "Which campaigns bring visitors who buy, and what do they return on their spend? Sessions are credited to "
    "their landing campaign; revenue is the converted sessions' net sales in EUR.",
)
rows = data.read(queries.campaigns, chosen.start, chosen.end)
sums = {k: sum(r[k] or 0 for r in rows) for k in ("sessions", "orders", "revenue", "ad_spend", *FUNNEL)}
paid = [r for r in rows if r["ad_spend"]]
paid_revenue = sum(r["revenue"] or 0 for r in paid)
view.metrics(
    [
        ("Sessions", view.count(sums["sessions"]), None),
        ("Web orders", view.count(sums["orders"]), None),
        ("Conversion rate", view.rate(sums["orders"] / sums["sessions"] if sums["sessions"] else None), None),
        ("Campaign revenue (EUR)", view.eur(sums["revenue"]), None),
        ("Ad spend (EUR)", view.eur(sums["ad_spend"]), None),
        ("ROAS (paid campaigns)", f"{paid_revenue / sums['ad_spend']:.2f}×" if sums["ad_spend"] else "–", None),
    ],
    help_texts={
        "ROAS (paid campaigns)": "Revenue of the campaigns with ad spend, per euro spent on them.",
        "Conversion rate": "Sessions that placed an order.",
    },
)
st.caption(f"{chosen.start:%d %b %Y} to {chosen.end:%d %b %Y}. The web shop only: channel and store do not apply.")

left, right = st.columns([1, 2])
with left:
    st.subheader("Funnel")
    steps = view.frame({"step": label, "count": sums[key]} for key, label in FUNNEL.items())
    view.bars(steps, "step:N", "count:Q", money=False, horizontal=True, ranked=False)
    st.caption("Product views, carts and checkouts count events; sessions and orders count sessions.")
with right:
    st.subheader("Revenue and ad spend by campaign")
    spend = view.frame(
        {"campaign": r["campaign"], "measure": measure, "amount": r[key]}
        for r in rows
        for key, measure in (("revenue", "Revenue"), ("ad_spend", "Ad spend"))
    )
    if spend.empty:
        st.info("No sessions in this period.")
    else:
        view.bars(spend, "campaign:N", "amount:Q", "measure:N", horizontal=True, grouped=True, ranked=False)

st.subheader("Campaigns")
if rows:
    columns = ["campaign", "sessions", "orders", "conversion_rate", "revenue", "ad_spend", "roi", "roas"]
    view.table(
        view.frame(rows)[[*columns, "events_per_session", "avg_session_seconds"]],
        euros=("revenue", "ad_spend"),
        rates=("conversion_rate", "roi"),
    )
st.subheader("Audiences")
st.caption("Customers who accepted e-mail marketing, in each segment, as of the newest order in the lake.")
view.table(view.frame(data.read(queries.audiences)))
