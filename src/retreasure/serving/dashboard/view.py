"""How the dashboards show numbers: one format per kind (EUR, count, rate), headline metrics and charts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from retreasure.serving.dashboard.data import NotBuilt

Number = int | float | Decimal | None
CHART_HEIGHT = 280
# d3-format has no euro prefix without a locale: the axis labels are built by an expression instead.
EUR_LABELS = "'€' + format(datum.value, ',.0f')"


def eur(value: Number) -> str:
    """EUR with thousands separators and cents, minus sign in front: ``-€1,234.50``."""
    if value is None:
        return "–"
    sign = "-" if value < 0 else ""
    return f"{sign}€{abs(float(value)):,.2f}"


def count(value: Number) -> str:
    return "–" if value is None else f"{int(value):,}"


def rate(value: Number, places: int = 2) -> str:
    """A ratio shown as a percentage: 0.0256 -> ``2.56%``."""
    return "–" if value is None else f"{float(value) * 100:.{places}f}%"


def hours(value: Number) -> str:
    return "–" if value is None else f"{float(value):,.1f} h"


def days(value: Number) -> str:
    return "–" if value is None else f"{float(value):,.1f} days"


def growth(current: Number, previous: Number) -> str | None:
    """Change against the previous period as st.metric's delta; None when there is nothing to compare with."""
    if current is None or not previous:
        return None
    return f"{(float(current) - float(previous)) / abs(float(previous)) * 100:+.1f}%"


def header(title: str, question: str) -> None:
    """A page's title and the one question it answers."""
    st.title(title)
    st.caption(question)


def metrics(
    items: Sequence[tuple[str, str, str | None]],
    help_texts: dict[str, str] | None = None,
    compared_with: str | None = None,
    per_row: int = 3,
) -> None:
    """Headline numbers, ``per_row`` to a row: (label, formatted value, growth). Labels are stable: tests find
    them by label."""
    for first in range(0, len(items), per_row):
        row = items[first : first + per_row]
        for column, (label, value, delta) in zip(st.columns(per_row), row, strict=False):
            column.metric(
                label,
                value,
                delta,
                border=True,
                help=(help_texts or {}).get(label),
                delta_description=compared_with if delta else None,
            )


def frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame with Decimals as floats (charts and tables want numbers, not objects)."""
    df = pd.DataFrame(list(rows))
    for column in df.columns:
        if df[column].map(lambda v: isinstance(v, Decimal)).any():
            df[column] = df[column].astype(float)
    return df


# Column headings that are not just the column's name in words.
LABELS = {
    "aov": "AOV",
    "roi": "ROI",
    "roas": "ROAS",
    "duration_s": "Seconds",
    "fx_effect": "FX effect",
    "gross_margin_pct": "Gross margin %",
    "order_ts": "Ordered (UTC)",
    "ship_by_ts": "Ship by (UTC)",
    "skus_on_hand": "SKUs on hand",
    "cost_of_goods_30d": "Cost of goods, 30 days",
    "inventory_turnover_30d": "Turnover, 30 days",
    "unique_sell_through_30d": "Sell-through of unique items, 30 days",
}


def label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def table(
    df: pd.DataFrame,
    euros: Sequence[str] = (),
    rates: Sequence[str] = (),
    percents: Sequence[str] = (),
    height: int | None = None,
) -> None:
    """A data table with readable headings, no index, EUR formatted, ``rates`` (ratios) and ``percents``
    (already times 100) shown with a percent sign."""
    config: dict[str, Any] = {}
    for name in df.columns:
        if name in euros:
            config[name] = st.column_config.NumberColumn(label(name), format="euro")
        elif name in rates:
            config[name] = st.column_config.NumberColumn(label(name), format="percent")
        elif name in percents:
            config[name] = st.column_config.NumberColumn(label(name), format="%.2f%%")
        else:
            config[name] = st.column_config.Column(label(name))
    st.dataframe(df, hide_index=True, column_config=config, height=height or "auto")


def _axis(money: bool) -> alt.Axis:
    return alt.Axis(labelExpr=EUR_LABELS) if money else alt.Axis(format=",.0f")


def bars(
    df: pd.DataFrame,
    x: str,
    y: str,
    color: str | None = None,
    money: bool = True,
    horizontal: bool = False,
    grouped: bool = False,
    ranked: bool = True,
    height: int | None = None,
) -> None:
    """A bar chart of ``y`` per ``x`` (stacked by ``color``); ``horizontal`` puts the categories down the side,
    longest bar first unless not ``ranked``; ``grouped`` puts the colours side by side."""
    order = "-x" if horizontal and ranked else None
    category = (alt.Y if horizontal else alt.X)(x, title=None, sort=order)
    amount = (alt.Y if not horizontal else alt.X)(y, title=None, axis=_axis(money))
    encoding: dict[str, Any] = {
        "x" if not horizontal else "y": category,
        "y" if not horizontal else "x": amount,
        "tooltip": [x, alt.Tooltip(y, format=",.2f" if money else ",.0f")] + ([color] if color else []),
    }
    if color:
        # A colour that only repeats the category needs no legend.
        legend = None if color.split(":")[0] == x.split(":")[0] else alt.Legend(orient="bottom")
        encoding["color"] = alt.Color(color, title=None, legend=legend, scale=alt.Scale(scheme="tableau10"))
        if grouped:
            encoding["yOffset" if horizontal else "xOffset"] = alt.YOffset(color) if horizontal else alt.XOffset(color)
    if height is None:
        # Horizontal bars get room for every label (Vega drops labels that would overlap).
        rows = df[x.split(":")[0]].nunique() if horizontal else 0
        height = max(CHART_HEIGHT, 24 * rows) if rows > 10 else CHART_HEIGHT
    chart = alt.Chart(df).mark_bar().encode(**encoding).properties(height=height)
    st.altair_chart(chart, width="stretch")


def lines(df: pd.DataFrame, x: str, y: str, color: str | None = None, money: bool = True) -> None:
    """A line chart over time, one line per ``color``."""
    encoding: dict[str, Any] = {
        "x": alt.X(x, title=None, type="temporal"),
        "y": alt.Y(y, title=None, axis=_axis(money)),
        "tooltip": [alt.Tooltip(x, type="temporal"), alt.Tooltip(y, format=",.2f" if money else ",.0f")]
        + ([color] if color else []),
    }
    if color:
        encoding["color"] = alt.Color(
            color, title=None, legend=alt.Legend(orient="bottom"), scale=alt.Scale(scheme="tableau10")
        )
    chart = alt.Chart(df).mark_line(point=True).encode(**encoding).properties(height=CHART_HEIGHT)
    st.altair_chart(chart, width="stretch")


def forecast_chart(history: pd.DataFrame, forecast: pd.DataFrame, y: str, money: bool) -> None:
    """Weeks sold (a line), the forecast after them (a dashed line) and its 95% and 80% intervals (two bands)."""
    x = alt.X("week:T", title=None)
    axis = alt.Y(f"{y}:Q", title=None, axis=_axis(money))
    bands = [
        alt.Chart(forecast)
        .mark_area(opacity=opacity, color="#4c78a8")
        .encode(x=x, y=alt.Y(f"{y}_lo_{level}:Q", title=None, axis=_axis(money)), y2=f"{y}_hi_{level}:Q")
        for level, opacity in ((95, 0.15), (80, 0.3))
    ]
    sold = alt.Chart(history).mark_line(point=True, color="#333333").encode(x=x, y=axis)
    expected = alt.Chart(forecast).mark_line(point=True, strokeDash=[6, 3], color="#4c78a8").encode(x=x, y=axis)
    st.altair_chart(alt.layer(*bands, sold, expected).properties(height=CHART_HEIGHT), width="stretch")


def not_built(error: NotBuilt) -> None:
    """A clear message instead of a stack trace when a table the section needs is missing."""
    st.info(f"Not built yet: {error}", icon="🛠️")
