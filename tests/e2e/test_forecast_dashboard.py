"""The demand forecast page in a real headless Chromium, over the simulated year's trained forecast: its numbers
are the forecast table's, its charts draw the history, the forecast and the intervals, a category change follows,
and only the roles that may read forecasts see the page."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from playwright.sync_api import Page

from retreasure.lake import Lake
from retreasure.ml import forecast as fc
from retreasure.serving.auth import create_key
from tests.e2e.test_dashboards import (
    browser,  # noqa: F401 - the module's browser fixture
    changed,
    choose,
    dashboards,
    metric,
    open_page,
    page,  # noqa: F401 - a fresh context per test
    parse,
    pytestmark,  # noqa: F401 - e2e, and skipped without Chromium
    screenshot,
    sign_in,
)

TITLE = "Demand forecast"


@dataclass(frozen=True)
class Served:
    url: str
    lake: Lake
    keys: dict[str, str]


@pytest.fixture(scope="module")
def served(trained: tuple[Lake, fc.ForecastRun], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("forecast-dashboard")
    lake = Lake(shutil.copytree(trained[0].uri, root / "lake"))
    keys = {role: create_key(lake, role, f"e2e {role}") for role in ("operations", "marketing")}
    with dashboards(lake, root) as url:
        yield Served(url, lake, keys)


def expected_units(lake: Lake, category: str, channel: str) -> Decimal:
    """The quarter's units of a channel's category, as the forecast table holds them (the page shows whole units)."""
    sql = f"SELECT sum(units) AS u FROM {fc.FORECAST} WHERE scope = 'channel' AND category = $c AND channel = $ch"
    return Decimal(str(lake.query(sql, [fc.FORECAST], {"c": category, "ch": channel}).column(0)[0].as_py()))


def shows(text: str, units: Decimal) -> bool:
    """The page shows whole units (the sum of the weeks' forecasts, cut to a whole number)."""
    return parse(text) == int(units)


def test_forecast_page_plots_history_forecast_and_intervals(served: Served, page: Page) -> None:  # noqa: F811
    sign_in(page, served.url, served.keys["operations"])
    open_page(page, TITLE)
    categories = sorted(
        {r["category"] for r in served.lake.query(f"SELECT DISTINCT category FROM {fc.FORECAST}").to_pylist()}
    )
    channel = page.get_by_role("combobox", name="Channel", exact=True).input_value()
    shown = metric(page, "Units, next 13 weeks")
    assert shows(shown, expected_units(served.lake, categories[0], channel))
    # Two charts, each with the history, the forecast line and two interval bands drawn.
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    charts.nth(1).wait_for()
    assert charts.count() == 2
    path = screenshot(page, "forecast")
    assert path.stat().st_size > 10_000
    other = next(c for c in categories[1:] if not shows(shown, expected_units(served.lake, c, channel)))
    choose(page, "Category", other)
    after = changed(page, "Units, next 13 weeks", shown)
    assert shows(after, expected_units(served.lake, other, channel))


def test_marketing_does_not_see_the_forecast(served: Served, page: Page) -> None:  # noqa: F811
    sign_in(page, served.url, served.keys["marketing"])
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("(marketing)").wait_for()
    assert TITLE not in sidebar.inner_text()
