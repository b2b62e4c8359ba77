"""The sidebar's filters, shared by every page: period (last N days of the data), channels and store.

They are drawn once by the app, before the page runs, so that a choice survives moving between pages; a filter
that does not apply to the page is shown disabled rather than hidden (hiding a widget would forget its value).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import streamlit as st

from retreasure.serving.dashboard import data

PRESETS: dict[str, int | None] = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "All data": None}
CUSTOM = "Custom range"
DEFAULT_PRESET = "Last 30 days"
FILTERS = ("period", "channel", "store")
ALL_STORES = ""


@dataclass(frozen=True)
class Filters:
    """The selection a page reads: an inclusive date range, channels (empty: all) and a store (None: all)."""

    start: date
    end: date
    channels: tuple[str, ...] = ()
    store: str | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> tuple[date, date]:
        """The period of the same length just before this one: what growth is measured against."""
        return self.start - timedelta(days=self.days), self.start - timedelta(days=1)

    def includes(self, channel: str) -> bool:
        return not self.channels or channel in self.channels


def preset_range(preset: str, span: tuple[date, date]) -> tuple[date, date]:
    """The last N days of the data (its newest day, not today), never before its first day."""
    days = PRESETS.get(preset)
    first, last = span
    return (first if days is None else max(first, last - timedelta(days=days - 1)), last)


def sidebar(applies: set[str]) -> Filters | None:
    """Draw the filters in the sidebar; the selection, or None when the lake has no sales yet."""
    try:
        span = data.read(data.data_span)
        channels = {r["channel"]: r["name"] for r in data.read(data.channels)}
        stores = {r["store_id"]: f"{r['store_id']} · {r['city']}" for r in data.read(data.stores)}
    except data.NotBuilt:
        span = None
    if span is None:
        st.sidebar.info("No sales in the lake yet: run `retreasure demo` or `retreasure build`.")
        return None
    bar = st.sidebar
    bar.subheader("Filters")
    off = "period" not in applies
    periods = [*PRESETS, CUSTOM]
    preset = bar.selectbox("Period", periods, index=periods.index(DEFAULT_PRESET), key="f_preset", disabled=off)
    start, end = preset_range(preset if preset != CUSTOM else DEFAULT_PRESET, span)
    if preset == CUSTOM:
        chosen = bar.date_input(
            "Dates (UTC)",
            (start, end),
            min_value=span[0],
            max_value=span[1],
            key="f_range",
            disabled=off,
            help=f"Data from {span[0]:%d %b %Y} to {span[1]:%d %b %Y}.",
        )
        # While a range is being picked it has one end only: keep the default until the second click.
        if isinstance(chosen, tuple) and len(chosen) == 2:
            start, end = chosen
    else:
        bar.caption(f"{start:%d %b %Y} to {end:%d %b %Y} (UTC days)")
    picked = bar.multiselect(
        "Channels",
        list(channels),
        key="f_channels",
        format_func=channels.get,
        placeholder="All channels",
        disabled="channel" not in applies,
    )
    store = bar.selectbox(
        "Store",
        [ALL_STORES, *stores],
        key="f_store",
        format_func=lambda s: "All stores" if s == ALL_STORES else stores[s],
        disabled="store" not in applies,
        help="A store narrows the figures to that store's sales (store sales are the POS channel).",
    )
    return Filters(start, end, tuple(picked), store or None)


def current() -> Filters:
    """The selection drawn by the app for this run; stops the page with a message when there is no data."""
    chosen = st.session_state.get("filters")
    if chosen is None:
        st.info("Nothing to show yet: the lake has no sales. Run `retreasure demo` (or ingest and build).")
        st.stop()
    return chosen
