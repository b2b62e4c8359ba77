"""One report table to one file: CSV, XLSX or Parquet, byte-identical whenever the rows are.

Accounting re-imports a closed month's files and compares checksums, so nothing that varies between two runs
(write time, library clocks, zip entry dates) may reach the bytes: the XLSX carries the period's end as its
timestamps, and Parquet carries no write-time metadata.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.xml.functions import tostring

from retreasure.serving.exports.cells import csv_text, is_number, neutralise

FORMATS = ("csv", "xlsx", "parquet")
CORE_PROPERTIES = "docProps/core.xml"
ZIP_EPOCH = datetime(1980, 1, 1)  # the earliest date a zip entry can carry


def write_csv(table: pa.Table, path: Path) -> None:
    """UTF-8, a header row, RFC 4180 (CRLF, fields quoted when they hold a comma, quote or line break)."""
    kinds = [field.type for field in table.schema]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow([neutralise(name) for name in table.column_names])
        for row in table.to_pylist():
            writer.writerow([csv_text(value, kind) for value, kind in zip(row.values(), kinds, strict=True)])


def write_parquet(table: pa.Table, path: Path) -> None:
    """Raw values with their types (decimals stay decimals): Parquet is read by programs, not spreadsheets."""
    # Only the schema's own metadata is dropped: what DuckDB or pandas attached is not part of the report.
    pq.write_table(table.replace_schema_metadata(None), path, compression="zstd")


def number_format(kind: pa.DataType) -> str:
    if pa.types.is_decimal(kind):
        return "#,##0" + ("." + "0" * kind.scale if kind.scale > 0 else "")
    return "0" if pa.types.is_integer(kind) else "General"


def write_xlsx(table: pa.Table, path: Path, stamp: datetime, sheet: str = "report") -> None:
    """One sheet: a bold, frozen header row; numbers as numbers with a number format; text always as text."""
    book = Workbook()
    ws = book.active
    ws.title = sheet
    bold = Font(bold=True)
    for col, name in enumerate(table.column_names, start=1):
        cell = ws.cell(row=1, column=col, value=neutralise(name))
        cell.font = bold
    formats = [number_format(field.type) for field in table.schema]
    numeric = [is_number(field.type) for field in table.schema]
    for row_number, row in enumerate(table.to_pylist(), start=2):
        for col, value in enumerate(row.values(), start=1):
            if value is None:
                continue
            cell = ws.cell(row=row_number, column=col)
            if numeric[col - 1]:
                cell.value = value
                cell.number_format = formats[col - 1]
            else:
                # Characters XML cannot carry are replaced rather than failing the whole month's export.
                cell.value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", neutralise(str(value)))
                cell.data_type = "s"  # a string cell, never a formula, whatever the text
    ws.freeze_panes = "A2"
    for col, name in enumerate(table.column_names, start=1):
        widest = max([len(name), *(len(str(v)) for v in table.column(col - 1).to_pylist())])
        ws.column_dimensions[get_column_letter(col)].width = min(widest + 2, 60)
    book.properties.creator = "retreasure"
    book.properties.created = stamp
    buffer = io.BytesIO()
    book.save(buffer)
    # openpyxl stamps "modified" with the clock while saving: write the core properties again with the stamp.
    book.properties.modified = stamp
    path.write_bytes(_fixed_zip(buffer.getvalue(), stamp, {CORE_PROPERTIES: tostring(book.properties.to_tree())}))


def _fixed_zip(data: bytes, stamp: datetime, replace: dict[str, bytes]) -> bytes:
    """The same archive with every entry dated ``stamp`` and fixed permissions (zip entries carry local time)."""
    when = max(stamp, ZIP_EPOCH).timetuple()[:6]
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            info = zipfile.ZipInfo(entry.filename, date_time=when)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, replace.get(entry.filename, source.read(entry.filename)))
    return out.getvalue()
