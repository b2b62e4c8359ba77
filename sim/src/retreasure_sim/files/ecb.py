"""ECB reference-rate files: one daily file per TARGET business day in ECB's tab-indented layout, and the
90-day history in its compact layout (newest day first), as the ECB publishes them."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal

from retreasure_sim import world
from retreasure_sim.files.drop import Doc, Dropper, plain
from retreasure_sim.model import Truth

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
ENVELOPE = (
    '<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
    'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">'
)
SENDER = (
    "<gesmes:subject>Reference rates</gesmes:subject>{n}{t}<gesmes:Sender>{n}{t}{t}"
    "<gesmes:name>European Central Bank</gesmes:name>{n}{t}</gesmes:Sender>{n}"
)
HISTORY_DAYS = 90


def rate_text(currency: str, rate: Decimal) -> str:
    """The rate with the decimals the ECB quotes for that currency ("0.85200", "162.29")."""
    quoted = world.FX_START.get(currency)
    return f"{rate:.{quoted[1]}f}" if quoted else plain(rate)


def daily(day: date, rates: list[tuple[str, Decimal]], drift: bool) -> Doc:
    extra = f" published='{day.isoformat()}T16:00:00+01:00'" if drift else ""
    cubes = "".join(f"\t\t\t<Cube currency='{c}' rate='{rate_text(c, r)}'/>\n" for c, r in rates)
    record = f"\t\t<Cube time='{day.isoformat()}'{extra}>\n{cubes}\t\t</Cube>\n"
    head = DECLARATION + ENVELOPE + "\n\t" + SENDER.format(n="\n", t="\t") + "\t<Cube>\n"
    return Doc(head, [record], "\t</Cube>\n</gesmes:Envelope>")


def history(by_day: dict[date, list[tuple[str, Decimal]]], drift: bool) -> Doc:
    extra = ' published="yes"' if drift else ""
    records = [
        f'<Cube time="{day.isoformat()}"{extra}>'
        + "".join(f'<Cube currency="{c}" rate="{rate_text(c, r)}"/>' for c, r in rates)
        + "</Cube>"
        for day, rates in sorted(by_day.items(), reverse=True)
    ]
    head = DECLARATION.rstrip("\n") + ENVELOPE + SENDER.format(n="", t="") + "<Cube>"
    return Doc(head, records, "</Cube></gesmes:Envelope>\n", "\n")


ENTRY = re.compile(r"<Cube currency=(['\"])([A-Z]{3})\1 rate=\1([^'\"]*)\1")
# How one rate of a day comes broken: a decimal comma, no value, a minus sign, a currency code in lower case.
SPOILS: tuple[Callable[[str, str], tuple[str, str]], ...] = (
    lambda currency, rate: (currency, rate.replace(".", ",") if "." in rate else rate + ",0"),
    lambda currency, rate: (currency, ""),
    lambda currency, rate: (currency, "-" + rate),
    lambda currency, rate: (currency.lower(), rate),
)


def spoil_day(record: str, rng: random.Random) -> str:
    """A second copy of a day with one rate broken: still XML, so the rest of the file parses. Its other rates
    are the true ones (they land once); the broken rate is the one bad record."""
    entry = rng.choice(list(ENTRY.finditer(record)))
    quote = entry.group(1)
    currency, rate = rng.choice(SPOILS)(entry.group(2), entry.group(3))
    broken = f"<Cube currency={quote}{currency}{quote} rate={quote}{rate}{quote}"
    return record[: entry.start()] + broken + record[entry.end() :]


def render(truth: Truth, dropper: Dropper) -> None:
    """Write the daily files and the 90-day history ending on the last business day."""
    by_day: dict[date, list[tuple[str, Decimal]]] = defaultdict(list)
    for fx in truth["fx_rates"]:
        by_day[fx.date].append((fx.currency, fx.rate))
    for day, rates in sorted(by_day.items()):
        relative = f"ecb/eurofxref-daily_{day.isoformat()}.xml"
        dropper.drop("ecb", "fx_rates", relative, daily(day, rates, dropper.drifts(relative)), spoil_day)
    if by_day:
        last = max(by_day)
        recent = {day: rates for day, rates in by_day.items() if day > last - timedelta(days=HISTORY_DAYS)}
        relative = f"ecb/eurofxref-hist-90d_{last.isoformat()}.xml"
        dropper.drop("ecb", "fx_rates", relative, history(recent, dropper.drifts(relative)), spoil_day)


def expected(truth: Truth, as_of: datetime | None = None) -> dict[str, int]:
    """Published rates up to ``as_of``: one record per currency and business day."""
    published = {(fx.date, fx.currency) for fx in truth["fx_rates"] if as_of is None or fx.date <= as_of.date()}
    return {"ecb_fx_rates": len(published)}
