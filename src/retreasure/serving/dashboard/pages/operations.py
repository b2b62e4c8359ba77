"""Operations: the orders waiting to ship, how fast parcels leave and arrive, and the stock on the shelves."""

from __future__ import annotations

import streamlit as st

from retreasure.serving import queries
from retreasure.serving.dashboard import data, filters, view

# The queue's ship-to is shown as city and country only: names and streets stay tokens, off the screen.
QUEUE_COLUMNS = ["order_key", "channel", "order_ts", "ship_by_ts", "overdue", "items", "ship_to_city", "ship_country"]

# Rates first, then what they are made of: the table stays readable without scrolling sideways.
CHANNEL_COLUMNS = [
    "channel",
    "orders_to_ship",
    "fulfillment_rate",
    "on_time_rate",
    "shipped_on_time",
    "shipped_late",
    "overdue_unshipped",
    "orders_pending",
    "median_hours_to_ship",
    "median_delivery_days",
]

chosen = filters.current()
names = {r["channel"]: r["name"] for r in data.read(data.channels)}
view.header(
    "Operations",
    "What is waiting to ship, are we shipping on time, and how much stock sits on the shelves? Fulfillment "
    "counts online orders placed in the period; the queue is every online order not shipped yet.",
)
metrics = data.read(queries.fulfillment_metrics, chosen.start, chosen.end, chosen.channels)
# The tiles are the same query over the chosen channels together: the rates are never averaged here.
totals = data.read(queries.fulfillment_totals, chosen.start, chosen.end, chosen.channels) or {}
queue_missing: data.NotBuilt | None = None
try:
    queue: list[dict] | None = [r for r in data.read(queries.fulfillment_queue) if chosen.includes(r["channel"])]
except data.NotBuilt as missing:
    queue, queue_missing = None, missing  # the section below says what is missing
judged_at = totals.get("judged_at")
view.metrics(
    [
        ("Orders to ship", view.count(totals.get("orders_to_ship", 0)), None),
        ("Fulfillment rate", view.rate(totals.get("fulfillment_rate")), None),
        ("On-time rate", view.rate(totals.get("on_time_rate")), None),
        ("Late orders", view.count(totals.get("late_orders", 0)), None),
        ("Open orders", view.count(None if queue is None else len(queue)), None),
        ("Overdue orders", view.count(None if queue is None else sum(r["overdue"] for r in queue)), None),
    ],
    help_texts={
        "Orders to ship": "Online orders placed in the period (store sales are handed over).",
        "Fulfillment rate": "Of those, the share with a parcel sent.",
        "On-time rate": "Of the orders with a promised dispatch time that can be judged, the share whose first "
        "parcel left in time. Not shipped and past the promise counts as late; not shipped and still within it "
        f"is pending and left out ({totals.get('orders_pending', 0):,} pending"
        + (f" at {judged_at:%d %b %Y %H:%M} UTC" if judged_at else "")
        + ").",
        "Late orders": f"Shipped after the promise ({totals.get('shipped_late', 0):,}) or not shipped and past it "
        f"({totals.get('overdue_unshipped', 0):,}).",
        "Open orders": "Online orders not shipped yet, at the newest order or parcel in the lake.",
        "Overdue orders": "Open orders past their promised dispatch time.",
    },
)
st.caption(f"Orders placed {chosen.start:%d %b %Y} to {chosen.end:%d %b %Y}; the store filter does not apply.")

left, right = st.columns(2)
by_channel = view.frame({"channel": names.get(r["channel"], r["channel"])} | r for r in metrics)
with left:
    st.subheader("Median hours to ship")
    if not by_channel.empty:
        view.bars(by_channel, "channel:N", "median_hours_to_ship:Q", "channel:N", money=False, horizontal=True)
with right:
    st.subheader("Median delivery days")
    delivered = by_channel.dropna(subset=["median_delivery_days"]) if not by_channel.empty else by_channel
    if delivered.empty:
        st.info("No deliveries reported in this selection (only Shopify reports them).")
    else:
        view.bars(delivered, "channel:N", "median_delivery_days:Q", "channel:N", money=False, horizontal=True)
if not by_channel.empty:
    view.table(by_channel[CHANNEL_COLUMNS], rates=("fulfillment_rate", "on_time_rate"))

st.subheader("Fulfillment queue")
if queue_missing is not None:
    view.not_built(queue_missing)
elif queue:
    view.table(view.frame(queue)[QUEUE_COLUMNS], height=320)
else:
    st.success("Nothing waiting to ship.")

st.subheader("Inventory")
try:
    stock = view.frame(data.read(data.inventory_now))
    relist = view.frame(data.read(data.stock_to_relist))
except data.NotBuilt as missing:
    view.not_built(missing)
else:
    if not stock.empty:
        st.caption(f"Stock at the end of {stock['day'].iloc[0]:%d %b %Y}, valued at cost (EUR).")
        aging = stock.melt(
            id_vars=["location_name"],
            value_vars=["units_aged_0_30", "units_aged_31_90", "units_aged_91_180", "units_aged_over_180"],
            var_name="age",
            value_name="units",
        )
        aging["age"] = aging["age"].str.removeprefix("units_aged_").str.replace("_", "-") + " days"
        left, right = st.columns([1, 2])
        with left:
            st.markdown("**Units on hand by age**")
            view.bars(aging, "location_name:N", "units:Q", "age:N", money=False)
        with right:
            st.markdown("**Value, turnover and days on hand**")
            view.table(
                stock.drop(columns=["day", *[c for c in stock.columns if c.startswith("units_aged")]]),
                euros=("value_on_hand", "cost_of_goods_30d"),
                rates=("unique_sell_through_30d",),
            )
    st.markdown(f"**Stock to re-list** ({len(relist):,} items)")
    if relist.empty:
        st.success("Nothing to re-list.")
    else:
        view.table(relist, euros=("value_at_cost",), height=320)
