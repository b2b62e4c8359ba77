"""How a rendered file reaches the landing folder, and how transfers go wrong on purpose.

A format builds a ``Doc`` (head, records, tail); the ``Dropper`` writes it and, where the seeded coin says so,
delivers it twice, slips in a broken record, or cuts it short and delivers it again whole. Every fault it
injects is returned as a ``Fault`` row so tests can look for it downstream.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from retreasure_sim.config import Faults, coin, hit
from retreasure_sim.model import Fault, money


@dataclass
class Doc:
    """One file's text in pieces, so that a fault can add, break or cut a record."""

    head: str
    records: list[str]
    tail: str = ""
    sep: str = ""

    def text(self) -> str:
        return self.head + self.sep.join(self.records) + self.tail

    def cut(self) -> str:
        """The file as a broken transfer leaves it: everything up to the middle of the last record."""
        before = self.head + self.sep.join(self.records[:-1]) + (self.sep if len(self.records) > 1 else "")
        last = self.records[-1]
        return before + last[: max(1, len(last) // 2)]


Spoil = Callable[[str, random.Random], str]  # a real record's text -> a broken copy of it


class Dropper:
    """Writes files under the landing folder, injecting the seeded file faults and remembering them."""

    def __init__(self, landing: Path, faults: Faults, seed: int) -> None:
        self.landing = landing
        self.faults = faults
        self.seed = seed
        self.injected: list[Fault] = []
        # Per (source, entity, fault): the file with records whose coin came closest, kept to strike it at the end
        # when no file of that entity was struck (see ``finish``).
        self.closest: dict[tuple[str, str, str], tuple[float, str, Doc, Spoil]] = {}

    def _hit(self, kind: str, relative: str, rate: float) -> bool:
        return hit(self.seed, f"file_{kind}", relative, rate)

    def _write(self, relative: str, text: str) -> None:
        path = self.landing / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))

    def drifts(self, relative: str) -> bool:
        """Whether this file is the one with an extra field in every record (render it so)."""
        return self._hit("schema_drift", relative, self.faults.schema_drift)

    def drop(
        self, source: str, entity: str, relative: str, doc: Doc, spoil: Spoil, force: frozenset[str] = frozenset()
    ) -> None:
        """Deliver one rendered file (drifted already if ``drifts(relative)``), faults included (and the faults
        ``force`` names, whatever their coins say)."""
        f = self.faults
        rng = random.Random(f"{self.seed}|{relative}")
        if not force:
            self._remember(source, entity, relative, doc, spoil)

        def fault(kind: str, detail: str) -> None:
            self.injected.append(Fault(source, entity, relative, kind, detail))

        if doc.records and self.drifts(relative):
            fault("schema_drift", "every record carries an extra field")
        if doc.records and (self._hit("malformed", relative, f.malformed) or "malformed" in force):
            broken = spoil(rng.choice(doc.records), rng)
            doc.records.insert(rng.randint(0, len(doc.records)), broken)
            fault("malformed", f"extra broken record: {broken[:80]}")
        full = doc.text()
        truncated = bool(doc.records) and (self._hit("truncated", relative, f.truncated_files) or "truncated" in force)
        self._write(relative, doc.cut() if truncated else full)
        if truncated:
            again = renamed(relative, "resent")
            self._write(again, full)
            fault("truncated", f"cut in its last record; delivered again whole as {again}")
        if self._hit("duplicate", relative, f.duplicates) or "duplicate" in force:
            copy = renamed(relative, "dup")
            self._write(copy, full)
            fault("duplicate", f"delivered a second time as {copy}")

    def _remember(self, source: str, entity: str, relative: str, doc: Doc, spoil: Spoil) -> None:
        if not doc.records:
            return
        for kind in _FORCEABLE:
            at = coin(self.seed, f"file_{kind}", relative)
            key = (source, entity, kind)
            if key not in self.closest or at < self.closest[key][0]:
                self.closest[key] = (at, relative, Doc(doc.head, list(doc.records), doc.tail, doc.sep), spoil)

    def finish(self) -> None:
        """A fault that is switched on strikes at least one file of every source's entity: the file whose coin
        came closest is delivered again with it, so a faulty world always holds a case of it, however few files a
        short run drops. (A file's drift is rendered into it, so drift keeps to its coins.)"""
        rates = {"malformed": self.faults.malformed, "truncated": self.faults.truncated_files}
        rates["duplicate"] = self.faults.duplicates
        struck = {(x.source, x.entity, x.kind) for x in self.injected}
        forced: dict[str, tuple[str, str, Doc, Spoil, set[str]]] = {}
        for (source, entity, kind), (_, relative, doc, spoil) in sorted(self.closest.items()):
            if rates[kind] > 0 and (source, entity, kind) not in struck:
                forced.setdefault(relative, (source, entity, doc, spoil, set()))[4].add(kind)
        for relative, (source, entity, doc, spoil, kinds) in sorted(forced.items()):
            # Delivered again from the start, so the file's faults are told once, as they now are.
            self.injected = [x for x in self.injected if x.record_key != relative]
            self.drop(source, entity, relative, doc, spoil, force=frozenset(kinds))


_FORCEABLE = ("malformed", "truncated", "duplicate")


def renamed(relative: str, tag: str) -> str:
    """``a/sales_10.csv`` -> ``a/sales_10.<tag>.csv``: how a sender names a re-delivery."""
    folder, _, name = relative.rpartition("/")
    stem, dot, suffix = name.partition(".")
    return f"{folder}/{stem}.{tag}{dot}{suffix}" if folder else f"{stem}.{tag}{dot}{suffix}"


def days(start: date, end: date) -> list[date]:
    """Every calendar day from ``start`` to ``end``, both included."""
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def amount(value: Decimal, currency: str) -> str:
    """Money as plain decimal text in the currency's minor unit ("120.00", "4200"), never "-0.00"."""
    q = money(value, currency)
    return str(abs(q) if q == 0 else q)


def plain(value: Decimal) -> str:
    """A rate or share without exponent or trailing zeros ("0.19")."""
    return format(value.normalize(), "f")


def utc_text(at: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as event collectors write it."""
    # isoformat cuts to the millisecond as the collectors do, several times faster than strftime.
    return at.astimezone(UTC).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def csv_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()


def csv_doc(header: list[str], rows: list[list[str]], drift: tuple[str, Callable[[int], str]] | None) -> Doc:
    """A CSV file; a drifted one has an extra column in the middle, so column positions shift."""
    if drift:
        name, value = drift
        at = min(3, len(header))
        header = [*header[:at], name, *header[at:]]
        rows = [[*row[:at], value(n), *row[at:]] for n, row in enumerate(rows)]
    return Doc(csv_line(header) + "\n", [csv_line(row) for row in rows], "\n" if rows else "", "\n")


def spoil_csv(record: str, rng: random.Random) -> str:
    """A broken copy of a CSV row: a decimal comma that splits a cell ("12,50"), or cells missing."""
    cells = next(csv.reader([record]))
    amounts = [i for i, cell in enumerate(cells) if cell.replace("-", "", 1).replace(".", "", 1).isdigit()]
    decimals = [i for i in amounts if "." in cells[i]]
    if decimals and rng.random() < 0.5:
        i = rng.choice(decimals)
        cut = [csv_line([cell]) for cell in cells]
        cut[i] = cells[i].replace(".", ",")  # unquoted: the comma makes one cell two
        return ",".join(cut)
    return csv_line(cells[: max(1, len(cells) - 2)])


def spoil_json(record: str, rng: random.Random) -> str:
    """A broken copy of a JSON record: single-quoted keys, or its closing brace lost."""
    return record.replace('"', "'", 2) if rng.random() < 0.5 else record.rstrip()[:-1]
