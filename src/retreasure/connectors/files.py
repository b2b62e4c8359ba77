"""Reading dropped files safely, shared by every file connector: streamed CSV and JSON Lines, strict JSON,
file dates and origins. Nothing here knows a source; connectors declare what the rows mean.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from retreasure.connectors.base import FileSource

MAX_CSV_LINE = 1 << 20  # a longer CSV "line" is not an export: it is reported, not loaded into memory
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


def text_lines(handle: BinaryIO) -> Iterator[str]:
    """A file's lines as text, streamed; bytes that are not UTF-8 become U+FFFD (and the row is flagged).
    A line over MAX_CSV_LINE is cut into pieces, which then fail as rows instead of filling memory."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    while chunk := handle.readline(MAX_CSV_LINE):
        yield decoder.decode(chunk)
    if tail := decoder.decode(b"", final=True):
        yield tail


@dataclass(slots=True)
class CsvRow:
    """One CSV record: its cells by column name, or None when it does not fit the header."""

    cells: dict[str, str] | None
    text: str  # the record's raw text
    error: str | None = None


def csv_rows(path: Path) -> Iterator[CsvRow]:
    """The records of a CSV file with a header row, streamed."""
    raw: list[str] = []

    def feed(lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            raw.append(line)
            yield line

    with path.open("rb") as handle:
        reader = csv.reader(feed(text_lines(handle)), strict=False)
        try:
            header = _unique(next(reader))
        except StopIteration:
            return
        raw.clear()
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield CsvRow(None, "".join(raw), f"malformed CSV: {exc}")
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


MAX_JSON_LINE = 4 << 20  # one event is a few kB; a longer line is reported, never loaded whole


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


STRICT_JSON = json.JSONDecoder(parse_constant=_no_constant)  # RFC 8259 has no NaN or Infinity


def load_json(text: str) -> Any:
    """Parse JSON strictly (no NaN/Infinity) and safely (hostile nesting is an error, not a crash)."""
    try:
        return STRICT_JSON.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def json_lines(path: Path) -> Iterator[tuple[Any, str | None]]:
    """(object, None) per good line of a JSON Lines file, or (line text, why it is malformed); streamed."""
    with path.open("rb") as handle:
        first = True
        while line := handle.readline(MAX_JSON_LINE + 1):
            if len(line) > MAX_JSON_LINE and not line.endswith(b"\n"):
                while (rest := handle.readline(MAX_JSON_LINE)) and not rest.endswith(b"\n"):
                    pass
                yield line[:200].decode("utf-8", "replace") + "...", f"malformed: line over {MAX_JSON_LINE} bytes"
                continue
            if first and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            first = False
            if not line.strip():
                continue
            cut = not line.endswith(b"\n")
            try:
                parsed = load_json(line.decode("utf-8"))
            except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                yield text, (f"truncated: last line cut short ({exc})" if cut else f"malformed JSON: {exc}")
                continue
            if isinstance(parsed, dict):
                yield parsed, None
            else:
                yield line.decode("utf-8").rstrip("\r\n"), f"malformed: a JSON {type(parsed).__name__}, not an object"
