"""Leadership: revenue and its growth by channel, orders, AOV, customer value and web conversion."""

from __future__ import annotations

import streamlit as st

from retreasure.serving import kpis
from retreasure.serving.dashboard import data, filters, live, view

chosen = filters.current()
names = {r["channel"]: r["name"] for r in data.read(data.channels)}
view.header(
    "Leadership",
    "How much are we selling, on which channels, and is it growing? Net revenue is sales less discounts and "
    "refunds, before tax and shipping, in EUR at each day's ECB rate.",
)
live.tile()

now = data.read(kpis.kpi_totals, chosen.start, chosen.end, chosen.channels, chosen.store)
before = data.read(kpis.kpi_totals, *chosen.previous(), chosen.channels, chosen.store)
customers = data.read(data.customer_value, chosen.start, chosen.end)
view.metrics(
    [
        ("Net revenue (EUR)", view.eur(now["net_revenue"]), view.growth(now["net_revenue"], before["net_revenue"])),
        ("Orders", view.count(now["orders"]), view.growth(now["orders"], before["orders"])),
        ("Average order value (EUR)", view.eur(now["aov"]), view.growth(now["aov"], before["aov"])),
        ("Conversion rate", view.rate(now["conversion_rate"]), None),
        ("New customers", view.count(now["new_customers"]), view.growth(now["new_customers"], before["new_customers"])),
        ("Average lifetime value (EUR)", view.eur(customers["avg_ltv"]), None),
    ],
    compared_with=f"vs the previous {chosen.days} days",
    help_texts={
        "Average order value (EUR)": "Sales less discounts, plus shipping, per order.",
        "Conversion rate": "Web shop sessions that placed an order (only the web shop has sessions).",
        "Average lifetime value (EUR)": "Net revenue to date from the customers whose first order is in the period "
        "(every channel; the channel and store filters do not apply).",
    },
)
st.caption(
    f"{chosen.start:%d %b %Y} to {chosen.end:%d %b %Y} ({chosen.days} days); "
    f"growth against the {chosen.days} days before."
)
shown = [c for c in names if chosen.includes(c)]
per_channel = view.frame(
    {"channel": names[c]} | data.read(kpis.kpi_totals, chosen.start, chosen.end, [c], chosen.store) for c in shown
)
grain = "day" if chosen.days <= 62 else "week"
series = view.frame(
    {"channel": names[c]} | row
    for c in shown
    for row in data.read(kpis.kpis, chosen.start, chosen.end, grain, [c], chosen.store)
)
left, right = st.columns([2, 1])
with left:
    st.subheader(f"Net revenue per {grain} by channel")
    if series.empty:
        st.info("No sales in this selection.")
    else:
        view.bars(series, "period:T", "net_revenue:Q", "channel:N")
with right:
    st.subheader("Net revenue by channel")
    if not per_channel.empty:
        view.bars(per_channel, "channel:N", "net_revenue:Q", "channel:N", horizontal=True)
st.subheader("Channels")
if not per_channel.empty:
    view.table(
        per_channel[
            ["channel", "orders", "gross_sales", "discounts", "refunds", "net_revenue", "aov", "new_customers"]
        ],
        euros=("gross_sales", "discounts", "refunds", "net_revenue", "aov"),
    )
