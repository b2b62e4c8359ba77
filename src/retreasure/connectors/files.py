"""Reading dropped files safely, shared by every file connector: streamed CSV and JSON Lines, strict JSON,
file dates and origins. Nothing here knows a source; connectors declare what the rows mean.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from retreasure.connectors.base import FileSource
from retreasure.records.sizes import KEPT_CHARS, oversized

PLAIN_DECIMAL = re.compile(r"-?\d+(\.\d+)?")
FILE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def origin_of(source: FileSource, path: Path) -> str:
    """Where a record came from: the file's path under the landing folder (the full path if outside it)."""
    landing = Path(source.settings.landing_dir)
    return path.relative_to(landing).as_posix() if path.is_relative_to(landing) else str(path)


def file_date(path: Path) -> date | None:
    """The business day in a drop's file name (``2025-03-04.jsonl``, ``customers_2025-03-04.geojson``)."""
    found = FILE_DATE.search(path.name)
    try:
        return date.fromisoformat(found.group()) if found else None
    except ValueError:
        return None


@dataclass(slots=True)
class LongLine:
    """A line over the line limit: read through once (hashed, never held whole), only its start kept."""

    head: str
    size: int
    sha256: str

    def reason(self, limit: int) -> str:
        return oversized("line", self.size, self.sha256, limit)


def raw_lines(handle: BinaryIO, max_line_bytes: int) -> Iterator[bytes | LongLine]:
    """A file's lines as bytes, streamed; a line longer than ``max_line_bytes`` comes as a LongLine instead.
    Work and memory per line are bounded by the limit, however long the line is."""
    while line := handle.readline(max_line_bytes + 1):
        if len(line) <= max_line_bytes or line.endswith(b"\n"):
            yield line
            continue
        digest, size, head = hashlib.sha256(line), len(line), line[:KEPT_CHARS]
        while rest := handle.readline(max_line_bytes):
            digest.update(rest)
            size += len(rest)
            if rest.endswith(b"\n"):
                break
        yield LongLine(head.decode("utf-8", "replace") + "...", size, digest.hexdigest())


@dataclass(slots=True)
class CsvRow:
    """One CSV record: its cells by column name, or None when it does not fit the header."""

    cells: dict[str, str] | None
    text: str  # the record's raw text
    error: str | None = None


def csv_rows(
    path: Path, max_line_bytes: int = 1 << 20, column_names: Callable[[str], str] | None = None
) -> Iterator[CsvRow]:
    """The records of a CSV file with a header row, streamed. ``column_names`` maps the header's names (to
    their normalised form, say); a line over ``max_line_bytes`` is one malformed record, the others still read."""
    raw: list[str] = []
    long_lines: list[LongLine] = []

    def feed(handle: BinaryIO) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        for line in raw_lines(handle, max_line_bytes):
            if isinstance(line, LongLine):
                long_lines.append(line)
                yield "\n"  # an empty line to the parser: the long line is reported on its own
                continue
            text = decoder.decode(line)
            raw.append(text)
            yield text
        if tail := decoder.decode(b"", final=True):
            raw.append(tail)
            yield tail

    with path.open("rb") as handle:
        reader = csv.reader(feed(handle), strict=False)
        try:
            names = next(reader)
        except StopIteration:
            return
        if long_lines:
            raise ValueError(f"not a CSV export: header {long_lines[0].reason(max_line_bytes)}")
        header = _unique([column_names(name) for name in names] if column_names else names)
        raw.clear()
        while True:
            problem: csv.Error | None = None
            try:
                cells: list[str] | None = next(reader)
            except StopIteration:
                cells = None
            except csv.Error as exc:
                cells, problem = [], exc
            for line in long_lines:  # read while the parser looked for this record
                yield CsvRow(None, line.head, line.reason(max_line_bytes))
            long_lines.clear()
            if cells is None:
                return
            if problem is not None:
                yield CsvRow(None, "".join(raw), f"malformed CSV: {problem}")
                raw.clear()
                continue
            text = "".join(raw)
            raw.clear()
            if not cells:
                continue
            error = "not UTF-8 text" if "\ufffd" in text else None
            if len(cells) != len(header):
                cut = not text.endswith(("\n", "\r"))  # the last record of a file cut in transfer
                problem = f"{len(cells)} cells for {len(header)} columns"
                yield CsvRow(
                    None, text, f"truncated: last record cut short ({problem})" if cut else f"malformed row: {problem}"
                )
                continue
            yield CsvRow(dict(zip(header, cells, strict=True)), text, error)


def _unique(header: list[str]) -> list[str]:
    """Column names, a repeated one suffixed (``name_2``) so that no cell is lost to a dict."""
    seen: dict[str, int] = {}
    names = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return names


def not_decimal(cells: dict[str, str], columns: Iterable[str]) -> str | None:
    """Why a row's numbers are unusable (a decimal comma, text), or None; absent columns are not checked."""
    for column in columns:
        value = cells.get(column)
        if value is not None and value != "" and not PLAIN_DECIMAL.fullmatch(value):
            return f"malformed: {column} {value!r} is not a plain decimal"
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


STRICT_JSON = json.JSONDecoder(parse_constant=_no_constant)  # RFC 8259 has no NaN or Infinity


def load_json(text: str) -> Any:
    """Parse JSON strictly (no NaN/Infinity) and safely (hostile nesting is an error, not a crash)."""
    try:
        return STRICT_JSON.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def json_lines(path: Path, max_line_bytes: int = 1 << 20) -> Iterator[tuple[Any, str | None]]:
    """(object, None) per good line of a JSON Lines file, or (line text, why it is malformed); streamed. A line
    over ``max_line_bytes`` is reported by its start, size and hash, never loaded whole."""
    for line in json_line_texts(path, max_line_bytes):
        yield json_line(line, max_line_bytes)


def json_line_texts(path: Path, max_line_bytes: int = 1 << 20) -> Iterator[bytes | LongLine]:
    """The lines of a JSON Lines file that hold a record, as bytes (a BOM and blank lines left out), a line over
    ``max_line_bytes`` as a LongLine; streamed. ``json_line`` reads each as ``json_lines`` does."""
    with path.open("rb") as handle:
        first = True
        for line in raw_lines(handle, max_line_bytes):
            if isinstance(line, LongLine):
                yield line
                continue
            if first and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            first = False
            if line.strip():
                yield line


def json_line(line: bytes | LongLine, max_line_bytes: int) -> tuple[Any, str | None]:
    """(object, None) for a line of ``json_line_texts`` holding a JSON object, else (its text, why not)."""
    if isinstance(line, LongLine):
        return line.head, line.reason(max_line_bytes)
    return json_object(line, cut=not line.endswith(b"\n"))


def json_object(line: bytes, cut: bool = False) -> tuple[Any, str | None]:
    """(object, None) when ``line`` (a JSON Lines line, a message's value) is a JSON object, else (its text, why
    it is malformed); ``cut``: the line is the end of a file cut in transfer."""
    try:
        parsed = load_json(line.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        return text, (f"truncated: last line cut short ({exc})" if cut else f"malformed JSON: {exc}")
    if isinstance(parsed, dict):
        return parsed, None
    return line.decode("utf-8").rstrip("\r\n"), f"malformed: a JSON {type(parsed).__name__}, not an object"
