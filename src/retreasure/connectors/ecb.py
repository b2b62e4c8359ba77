"""ECB euro reference rates: the daily file (tab-indented, single-quoted) and the history files (compact,
newest day first). Each currency's rate on each day is one record, keyed ``<YYYY-MM-DD>/<CUR>``, so that one
bad rate is quarantined alone and the other rates of its day still land.

A record's text is its day's ``<Cube time=...>`` around the one rate, without the file's layout (indentation,
quote style, attribute order, namespaces): the same rate from the daily and the history file is the same text,
and lands once. A record lists every problem it has (a decimal comma, no currency, a ``<Cube>`` of rates
without a ``time``...), never only the first.

Parsing is streamed and defused: a DTD or an entity declaration (the "billion laughs" bomb, external entities)
is refused, and a file cut in transfer lands the rates of every whole day before the cut and reports the rest.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from retreasure.connectors.base import Entity, FileSource, RawRecord, SourceError
from retreasure.connectors.files import origin_of

# ASCII only: a pattern's \d also takes other scripts' digits, which Decimal reads but silver's cast does not.
CURRENCY = re.compile(r"[A-Z]{3}")
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
RATE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# What silver's DECIMAL(18, 6) holds: at most 12 integer digits, and not rounded to zero at 6 places.
MAX_INTEGER_DIGITS = 12
MIN_RATE = Decimal("0.000001")
SHOWN = 40  # characters of a bad value quoted in a reason
DAY_START = re.compile(r"<(?:\w+:)?Cube\s+time=['\"](\d{4}-\d{2}-\d{2})")
TAIL_BYTES = 1 << 16  # how much of a cut file's end is kept as the cut day's raw text
CUT_SHORT = {3, 5, 6}  # expat: no element found, unclosed token, partial character: the input just stops


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def attributes(element: Element) -> str:
    """In name order, as canonical XML has them: a file that writes ``rate`` before ``currency`` changes nothing."""
    return "".join(
        f" {name}={quoteattr(value)}" for name, value in sorted((local(k), v) for k, v in element.attrib.items())
    )


def canonical(element: Element) -> str:
    """An element's XML without the file's layout (indentation, quote style, attribute order, namespaces)."""
    inner = escape(element.text.strip()) if element.text and element.text.strip() else ""
    inner += "".join(canonical(child) for child in element)
    name = local(element.tag)
    return f"<{name}{attributes(element)}>{inner}</{name}>" if inner else f"<{name}{attributes(element)}/>"


def entry_text(entry: Element, problems: list[str]) -> str:
    """A rate's canonical element; a good one with just its currency and rate needs no escaping (its values are
    letters, digits and a point), which spares the general path for the hundreds of thousands of a history."""
    if not problems and len(entry.attrib) == 2 and not (entry.text and entry.text.strip()):
        return f'<Cube currency="{entry.get("currency")}" rate="{entry.get("rate")}"/>'
    return canonical(entry)


def shown(value: str) -> str:
    return repr(value if len(value) <= SHOWN else value[:SHOWN] + "...")


def is_rate(element: Element) -> bool:
    return any(local(name) in ("currency", "rate") for name in element.attrib)


def day_of(cube: Element) -> tuple[date | None, list[str]]:
    """The business day a ``<Cube>`` of rates is for, or the problems that leave it without one."""
    when = cube.get("time")
    if when is None:
        return None, ["the <Cube> holding the rate has no time"]
    if DAY.fullmatch(when):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(when), []
    return None, [f"day {shown(when)} is not an ISO date (YYYY-MM-DD)"]


def rate_problems(entry: Element) -> list[str]:
    """Everything wrong with one rate entry: its element, its currency code, its rate."""
    problems = []
    if local(entry.tag) != "Cube":
        problems.append(f"<{local(entry.tag)}> is not a <Cube> rate entry")
    if len(entry):
        problems.append(f"the rate entry holds {len(entry)} element(s)")
    currency, rate = entry.get("currency"), entry.get("rate")
    if currency is None:
        problems.append("no currency")
    elif not CURRENCY.fullmatch(currency):
        problems.append(f"currency {shown(currency)} is not an ISO 4217 code (three capital letters)")
    of = "" if currency is None else f" for {currency if CURRENCY.fullmatch(currency) else shown(currency)}"
    if rate is None:
        problems.append(f"no rate{of}")
    elif not positive_decimal(rate):
        problems.append(f"rate {shown(rate)}{of} is not a positive decimal (digits, one '.')")
    return problems


def positive_decimal(text: str) -> bool:
    if not RATE.fullmatch(text) or len(text.partition(".")[0].lstrip("0")) > MAX_INTEGER_DIGITS:
        return False
    return Decimal(text) >= MIN_RATE


def malformed(problems: list[str]) -> str | None:
    return "malformed: " + "; ".join(problems) if problems else None


class EcbSource(FileSource):
    """The ECB's published euro foreign-exchange reference rates."""

    name = "ecb"
    system = "European Central Bank euro reference rates (eurofxref XML)"
    entities = (
        Entity(
            "fx_rates",
            key="time/currency",  # the landed key is '<day>/<currency>', set by read()
            description="One currency's rate on one TARGET business day: foreign-currency units per 1 EUR.",
            files="eurofxref-*.xml",
        ),
    )

    def read(self, entity: Entity, path: Path) -> Iterator[RawRecord]:
        origin = origin_of(self, path)
        days = 0
        ancestors: list[Element] = []
        try:
            with path.open("rb") as handle:
                for event, element in iterparse(handle, events=("start", "end"), forbid_dtd=True):
                    if event == "start":
                        ancestors.append(element)
                        continue
                    ancestors.pop()
                    parent = ancestors[-1] if ancestors else None
                    if local(element.tag) != "Cube":
                        continue
                    # A day is a Cube with a time, or one that is no rate and still holds entries at its end (a
                    # day's rates without their time); the envelope's Cube holds none by then: each day leaves it
                    # when read. A rate with something inside is its day's to report, whole.
                    if "time" in element.attrib or (len(element) and not is_rate(element)):
                        yield from self._rates(element, origin)
                        days += "time" in element.attrib
                        if parent is not None:
                            parent.remove(element)  # streamed: a 25-year history never sits in memory
                    elif element.attrib and (parent is None or local(parent.tag) != "Cube"):
                        yield self._loose(element, origin)
        except DefusedXmlException as exc:
            raise SourceError(self.name, f"{path.name}: refused: {exc} (DTDs and entities are not allowed)") from None
        except ParseError as exc:
            yield self._cut(path, origin, days, exc)

    def _rates(self, cube: Element, origin: str) -> Iterator[RawRecord]:
        """One record per entry of a day's Cube; a day without entries is one record, reported."""
        day, day_problems = day_of(cube)
        if not len(cube):
            error = malformed([*day_problems, "the day holds no rates"])
            yield RawRecord(canonical(cube), origin, error=error, partition_date=day)
            return
        # A record is its day's opening tag (every attribute of it), the rate's element, the closing tag.
        name = local(cube.tag)
        opening, closing = f"<{name}{attributes(cube)}>", f"</{name}>"
        for entry in cube:
            currency = entry.get("currency")
            key = f"{day.isoformat()}/{currency}" if day and currency and CURRENCY.fullmatch(currency) else None
            problems = rate_problems(entry)
            text = opening + entry_text(entry, problems) + closing
            yield RawRecord(text, origin, error=malformed([*day_problems, *problems]), key=key, partition_date=day)

    def _loose(self, entry: Element, origin: str) -> RawRecord:
        """A rate entry outside any Cube of a day: it has no day at all."""
        problems = ["the rate is outside any <Cube> of a day, so it has no time", *rate_problems(entry)]
        return RawRecord(canonical(entry), origin, error=malformed(problems))

    def _cut(self, path: Path, origin: str, days: int, exc: ParseError) -> RawRecord:
        """The rest of a file that stops parsing: its unfinished day's raw text, reported, never a crash."""
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - TAIL_BYTES))
            tail = handle.read().decode("utf-8", "replace")
        starts = list(DAY_START.finditer(tail))
        rest = tail[starts[-1].start() :] if starts else tail[-2000:]
        code = getattr(exc, "code", None)
        kind = "truncated: the file stops" if code in CUT_SHORT else "malformed XML"
        day = None
        with contextlib.suppress(ValueError, IndexError):
            day = date.fromisoformat(starts[-1].group(1))
        return RawRecord(rest, origin, error=f"{kind} after {days} whole days ({exc})", partition_date=day)
