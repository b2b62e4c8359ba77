"""Demand forecast: what each category is expected to sell over the next quarter, per channel or store, beside
what it sold, with the forecast's intervals, how well it did in its backtest, and the sourcing plan."""

from __future__ import annotations

import json

import streamlit as st

from retreasure.serving import forecasts
from retreasure.serving.dashboard import data, view

view.header(
    "Demand forecast",
    "What will each category sell in the next 13 weeks, and how many items should be sourced? Forecast per week "
    "with 80% and 95% intervals (the shaded bands), beside the last 26 weeks sold.",
)
series = data.read(forecasts.choices)
left, middle, right = st.columns(3)
category = left.selectbox("Category", sorted({s["category"] for s in series}), key="forecast_category")
channel = middle.selectbox(
    "Channel", sorted({s["channel"] for s in series if s["category"] == category}), key="forecast_channel"
)
stores = sorted({s["store_id"] for s in series if s["category"] == category and s["channel"] == channel} - {None})
store = right.selectbox("Store", ["All stores", *stores], key="forecast_store") if stores else None
answer = data.read(forecasts.demand, category, channel, None if store in (None, "All stores") else store)
run = data.read(forecasts.latest_promoted)
metrics = json.loads(run["metrics_json"]) if run else {}
weeks = answer["forecast"]
view.metrics(
    [
        ("Units, next 13 weeks", view.count(sum(w["units"] for w in weeks)), None),
        ("Net sales, next 13 weeks", view.eur(sum(w["revenue"] for w in weeks)), None),
        ("Backtest MASE", f"{metrics['model_mase']:.2f}" if metrics else "—", None),
        ("Seasonal-naive MASE", f"{metrics['baseline_mase']:.2f}" if metrics else "—", None),
    ],
    help_texts={
        "Backtest MASE": "Mean absolute error over the naive forecast's in-sample error, from rolling origins; "
        "lower is better. The forecast is served only when it beats the seasonal-naive baseline.",
    },
)
history, forecast = view.frame(answer["history"]), view.frame(weeks)
st.subheader("Units per week")
view.forecast_chart(history, forecast, "units", money=False)
st.subheader("Net sales per week")
view.forecast_chart(history, forecast, "revenue", money=True)
if run:
    st.caption(f"Run {run['run_id']} ({run['model']}), trained through {answer['run']['trained_through']}.")

st.subheader("Sourcing plan, next quarter")
st.caption("Items each category is expected to sell on all channels: buying as many keeps stock where it is.")
view.table(view.frame(data.read(forecasts.sourcing)))
