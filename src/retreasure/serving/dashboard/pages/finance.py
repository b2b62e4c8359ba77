"""Finance: revenue, margin, tax liability and FX effect per accounting month, as the finance reports give them."""

from __future__ import annotations

from datetime import date

import streamlit as st

from retreasure.serving import reports
from retreasure.serving.dashboard import data, filters, view


def months(start: date, end: date) -> list[str]:
    """Every accounting month (YYYY-MM) the date range touches."""
    out, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def report(name: str, periods: list[str]) -> list[dict]:
    """One finance report's rows for each month, with the month in front."""
    return [{"month": p} | row for p in periods for row in data.read(reports.finance_report, name, p).to_pylist()]


chosen = filters.current()
names = {r["channel"]: r["name"] for r in data.read(data.channels)}
periods = months(chosen.start, chosen.end)
view.header(
    "Finance",
    "What did we earn, what do we keep, and what do we owe in tax? Whole accounting months, EUR at each "
    "day's ECB rate; the FX effect is what converting at the month's closing rate instead would change.",
)
revenue = [r for r in report("revenue", periods) if chosen.includes(r["channel"])]
tax = report("tax", periods)
has_margin = data.read(reports.has_margin)
margin = [r for r in report("margin", periods) if chosen.includes(r["channel"])] if has_margin else []
owed = sum(r["tax_liability"] for r in tax if r["tax_party"] == "seller")


def total(rows: list[dict], key: str) -> object:
    return sum(r[key] or 0 for r in rows)


view.metrics(
    [
        ("Revenue (EUR)", view.eur(total(revenue, "revenue")), None),
        ("Refunds (EUR)", view.eur(total(revenue, "refunds")), None),
        ("Net revenue (EUR)", view.eur(total(revenue, "net_revenue")), None),
        ("Gross margin (EUR)", view.eur(total(margin, "gross_margin")) if has_margin else "–", None),
        ("FX effect (EUR)", view.eur(total(revenue, "fx_effect")), None),
        ("Tax we owe (EUR)", view.eur(owed), None),
    ],
    help_texts={
        "Revenue (EUR)": "Sales less discounts, before tax and shipping, in the order's month.",
        "Gross margin (EUR)": "Net revenue less the cost of the goods sold."
        + ("" if has_margin else " Not built yet: gold.mart_finance has no cost of goods."),
        "FX effect (EUR)": "Revenue at each order day's rate less revenue at the month's closing rate.",
        "Tax we owe (EUR)": "Tax collected less tax refunded where we file it (marketplaces remit the rest); "
        "every channel.",
    },
)
st.caption(
    f"Months {periods[0]} to {periods[-1]} (every month the dates touch, in full). Channels apply to revenue "
    "and margin; tax is per jurisdiction and covers every channel."
)

left, right = st.columns(2)
with left:
    st.subheader("Net revenue by month")
    frame = view.frame({"channel_name": names.get(r["channel"], r["channel"])} | r for r in revenue)
    if frame.empty:
        st.info("No sales in these months.")
    else:
        view.bars(frame, "month:N", "net_revenue:Q", "channel_name:N")
with right:
    st.subheader("Tax liability by jurisdiction")
    owed_by = view.frame(
        {"jurisdiction": f"{r['tax_country']}{'-' + r['tax_region'] if r['tax_region'] else ''}", **r} for r in tax
    )
    if owed_by.empty:
        st.info("No tax in these months.")
    else:
        view.bars(owed_by, "jurisdiction:N", "tax_liability:Q", "tax_party:N", horizontal=True)

st.subheader("Revenue by month and channel")
if revenue:
    view.table(
        view.frame(revenue),
        euros=("gross_sales", "discounts", "revenue", "refunds", "net_revenue", "fx_effect"),
    )
if has_margin:
    st.subheader("Margin")
    view.table(
        view.frame(margin), euros=("net_revenue", "cost_of_goods", "gross_margin"), percents=("gross_margin_pct",)
    )
st.subheader("Tax")
if tax:
    view.table(view.frame(tax), euros=("tax_collected", "tax_refunded", "tax_liability"))
