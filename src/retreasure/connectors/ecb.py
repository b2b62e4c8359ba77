"""ECB euro reference rates: the daily file (tab-indented, single-quoted) and the history files (compact,
newest day first), one record per ``<Cube time=...>`` day.

Parsing is streamed and defused: a DTD or an entity declaration (the "billion laughs" bomb, external entities)
is refused, and a file cut in transfer lands every whole day before the cut and reports the rest.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from retreasure.connectors.base import Entity, FileSource, RawRecord, SourceError
from retreasure.connectors.files import PLAIN_DECIMAL, origin_of

CURRENCY = re.compile(r"[A-Z]{3}")
DAY_START = re.compile(r"<(?:\w+:)?Cube\s+time=['\"](\d{4}-\d{2}-\d{2})")
TAIL_BYTES = 1 << 16  # how much of a cut file's end is kept as the cut day's raw text
CUT_SHORT = {3, 5, 6}  # expat: no element found, unclosed token, partial character: the input just stops


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def canonical(element: Element) -> str:
    """A day's XML without the file's layout (indentation, quote style, namespaces), so the same day from
    the daily and the history file is the same text, and lands once."""
    attributes = "".join(f" {local(k)}={quoteattr(v)}" for k, v in element.attrib.items())
    inner = escape(element.text.strip()) if element.text and element.text.strip() else ""
    inner += "".join(canonical(child) for child in element)
    name = local(element.tag)
    return f"<{name}{attributes}>{inner}</{name}>" if inner else f"<{name}{attributes}/>"


def day_problem(element: Element) -> str | None:
    """Why a day's rates are unusable (a decimal comma, a missing currency), or None."""
    for child in element:
        currency, rate = child.get("currency"), child.get("rate")
        if local(child.tag) != "Cube" or currency is None or not CURRENCY.fullmatch(currency):
            return f"malformed: an entry without a currency code ({canonical(child)[:80]})"
        if rate is None or not PLAIN_DECIMAL.fullmatch(rate) or float(rate) <= 0:
            return f"malformed: rate {rate!r} for {currency} is not a positive decimal"
    return None


class EcbSource(FileSource):
    """The ECB's published euro foreign-exchange reference rates."""

    name = "ecb"
    system = "European Central Bank euro reference rates (eurofxref XML)"
    entities = (
        Entity(
            "fx_rates",
            key="time",  # the landed key is the day, set by read()
            description="One TARGET business day's rates: foreign-currency units per 1 EUR.",
            files="eurofxref-*.xml",
        ),
    )

    def read(self, entity: Entity, path: Path) -> Iterator[RawRecord]:
        origin = origin_of(self, path)
        days = 0
        try:
            with path.open("rb") as handle:
                for _, element in iterparse(handle, events=("end",), forbid_dtd=True):
                    if local(element.tag) == "Cube" and "time" in element.attrib:
                        yield self._day(element, origin)
                        days += 1
                        element.clear()  # streamed: a 25-year history never sits in memory
        except DefusedXmlException as exc:
            raise SourceError(self.name, f"{path.name}: refused: {exc} (DTDs and entities are not allowed)") from None
        except ParseError as exc:
            yield self._cut(path, origin, days, exc)

    def _day(self, element: Element, origin: str) -> RawRecord:
        text, when = canonical(element), element.get("time", "")
        try:
            day = date.fromisoformat(when)
        except ValueError:
            return RawRecord(text, origin, error=f"malformed: day {when!r} is not an ISO date")
        return RawRecord(text, origin, error=day_problem(element), key=when, partition_date=day)

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
