"""The dashboards' entry point (`streamlit run app.py`): sign-in by API key, the pages a role may see, filters.

Run it with `retreasure dashboard`. The key is the API's (`retreasure keys create --role ...`), entered once in
the sidebar, or RETREASURE_DASHBOARD_KEY for a kiosk; its role decides the pages shown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from retreasure.serving.auth import Principal, authenticate
from retreasure.serving.dashboard import data, filters, view

PAGES_DIR = Path(__file__).with_name("pages")
KIOSK_KEY_ENV = "RETREASURE_DASHBOARD_KEY"


@dataclass(frozen=True)
class PageSpec:
    """A dashboard page: its file, title, icon, who may open it and which sidebar filters apply to it."""

    name: str
    title: str
    icon: str
    roles: frozenset[str]
    filters: frozenset[str]


EVERY = frozenset(filters.FILTERS)
PERIOD_AND_CHANNEL = frozenset({"period", "channel"})
PAGES = (
    PageSpec("leadership", "Leadership", ":material/trending_up:", frozenset({"leadership", "admin"}), EVERY),
    PageSpec("marketing", "Marketing", ":material/campaign:", frozenset({"marketing", "admin"}), frozenset({"period"})),
    PageSpec(
        "operations",
        "Operations",
        ":material/local_shipping:",
        frozenset({"operations", "admin"}),
        PERIOD_AND_CHANNEL,
    ),
    PageSpec("finance", "Finance", ":material/euro:", frozenset({"finance", "admin"}), PERIOD_AND_CHANNEL),
    PageSpec(
        "forecast",
        "Demand forecast",
        ":material/query_stats:",
        frozenset({"leadership", "operations", "admin"}),
        frozenset(),
    ),
    PageSpec(
        "data_health",
        "Data health",
        ":material/monitor_heart:",
        frozenset({"leadership", "operations", "admin"}),
        frozenset(),
    ),
)


def principal() -> Principal | None:
    """Who is looking: the kiosk key, else the key entered in the sidebar (checked again on every run, so a
    revoked key stops working at the next click)."""
    key = os.environ.get(KIOSK_KEY_ENV) or st.session_state.get("dashboard_key", "")
    return authenticate(data.lake(), key) if key else None


def _sign_in() -> None:
    st.session_state["dashboard_key"] = st.session_state.pop("key_input", "").strip()


def _sign_out() -> None:
    st.session_state.pop("dashboard_key", None)


def sign_in_page() -> None:
    st.title("ReTreasure dashboards")
    st.caption("Leadership, marketing, operations, finance and data health, read from the lake's gold layer.")
    if st.session_state.get("dashboard_key"):
        st.error("That key is unknown or revoked.")
    st.info("Enter your dashboard key in the sidebar. Keys come from `retreasure keys create --role <role>`.")


def main() -> None:
    # An emoji favicon is drawn inline; a page's Material icon as favicon would be fetched from a font CDN, and
    # the dashboards make no outside call.
    st.set_page_config(page_title="ReTreasure dashboards", page_icon="🏺", layout="wide")
    who = principal()
    if who is None:
        st.sidebar.text_input("Dashboard key", type="password", key="key_input", on_change=_sign_in)
        st.navigation([st.Page(sign_in_page, title="Sign in", icon=":material/key:")]).run()
        return
    allowed = [spec for spec in PAGES if who.role in spec.roles]
    pages = {
        spec.name: st.Page(PAGES_DIR / f"{spec.name}.py", title=spec.title, icon=spec.icon, url_path=spec.name)
        for spec in allowed
    }
    current = st.navigation(list(pages.values()))
    spec = next(s for s in allowed if s.title == current.title)
    st.session_state["filters"] = filters.sidebar(set(spec.filters))
    st.sidebar.divider()
    st.sidebar.caption(f"Signed in as **{who.name or who.key_id}** ({who.role}).")
    if not os.environ.get(KIOSK_KEY_ENV):
        st.sidebar.button("Sign out", on_click=_sign_out)
    try:
        current.run()
    except data.NotBuilt as missing:  # a page whose tables the lake does not have yet says so, plainly
        view.not_built(missing)


main()
