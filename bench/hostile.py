"""Ingest time per MB of hostile POS drops, 1 KB to 50 MB: it must stay linear (no input can hang a run).

Three shapes, each ingested whole (``run_ingest``: read, mask, hash, land, quarantine) into a fresh lake:
- one malformed line of the given size among 30 good rows (junk with '@', '+', digits and dots: what made the old
  e-mail pattern backtrack),
- one row whose quoted title field is the given size (valid-looking text full of numbers and addresses),
- a whole file of the given size made of short valid rows.
Lines over the line limit are skipped cheaply, so the malformed line is also timed with the limits raised to
64 MB (up to 10 MB): then it is parsed, masked and landed whole. The safety net alone (``PiiMasker.mask_text``)
is timed on the same junk too.
A same-run ingest of a file of 30 good rows (best of three) is the fixed cost subtracted before dividing by the size;
the ratio compares each size's s/MB with the 1 MB case of its shape. Results go to docs/benchmarks.md.

    make bench-hostile           # or: .venv/bin/python -m bench.hostile [--max-mb 50] [--no-write]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from bench.ingest import bench_settings, write_section
from retreasure.bronze.ingest import run_ingest
from retreasure.bronze.pii import PiiMasker
from retreasure.lake import Lake

MARK = "<!-- bench/hostile -->"
KB, MB = 1024, 1024 * 1024
SIZES = [KB, 10 * KB, 100 * KB, MB, 10 * MB, 50 * MB]
HEADER = (
    "type,receipt_id,line_no,sold_at,store_id,sku,title,quantity,unit_price,discount,tax,tax_rate,currency,"
    "discount_code,payment_method,loyalty_email,loyalty_phone\n"
)
JUNK = "a@b.c a@ +1 (0 1. x@y.zz 030 12 "  # no newline, no quote: one endless malformed record


def row(n: int, title: str = "Vase") -> str:
    return (
        f"sale,BER-{n},1,2025-03-04T10:{n % 60:02d}:00+01:00,BER,RT-{n % 97},{title},1,12.50,0.00,2.38,0.19,EUR,,"
        f"card,ann{n % 50}@example.com,+49 30 {1000000 + n}\n"
    )


def good_rows() -> str:
    return "".join(row(n) for n in range(1, 31))


def repeat(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def long_line(size: int) -> str:
    rows = good_rows()
    return HEADER + rows[: len(rows) // 2] + repeat(JUNK, size) + "\n" + rows[len(rows) // 2 :]


def long_field(size: int) -> str:
    return HEADER + good_rows() + row(99, '"' + repeat("Brass lamp 12.50 x@shop.example 2025-03-04 ", size) + '"')


def many_lines(size: int) -> str:
    lines, total, n = [HEADER], len(HEADER), 0
    while total < size:
        n += 1
        lines.append(row(n))
        total += len(lines[-1])
    return "".join(lines)


SHAPES: dict[str, Callable[[int], str]] = {
    "one malformed line": long_line,
    "one long field": long_field,
    "many short lines": many_lines,
}


RAISED = "one malformed line, limits 64 MB"


def ingest_seconds(content: str, raised: bool = False) -> tuple[float, int]:
    """Wall time of ingesting one POS file with this content into a fresh lake; and the records it gave."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = bench_settings(root)
        if raised:
            settings.ingest.max_line_bytes = settings.ingest.max_record_bytes = 64 * MB
        path = root / "landing/pos/sales/BER/2025-03-04/sales_10.csv"
        path.parent.mkdir(parents=True)
        path.write_text(content)
        lake = Lake.from_settings(settings)
        started = time.perf_counter()
        runs = run_ingest(settings, lake, ["pos"])
        elapsed = time.perf_counter() - started
        assert all(r.status == "success" for r in runs), [r.error for r in runs]
        return elapsed, sum(r.records for r in runs)


def mask_seconds(size: int) -> float:
    text = repeat(JUNK, size)
    started = time.perf_counter()
    PiiMasker("bench-key").mask_text(text)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-mb", type=float, default=50, help="largest size measured, in MB")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    sizes = [s for s in SIZES if s <= args.max_mb * MB]
    fixed = min(ingest_seconds(HEADER + good_rows())[0] for _ in range(3))
    print(f"fixed cost (a file of 30 good rows): {fixed:.2f} s")
    results: list[tuple[str, int, float, float, int]] = []  # shape, bytes, seconds, net s/MB, records
    for shape, make in SHAPES.items():
        for size in sizes:
            content = make(size)
            # Small cases are mostly fixed cost and noise on a shared machine: the best of three.
            seconds, records = min(ingest_seconds(content) for _ in range(3 if size < MB else 1))
            size_mb = len(content.encode()) / MB
            results.append((shape, size, seconds, max(seconds - fixed, 0.0) / size_mb, records))
            print(f"{shape:20} {label(size):>7} {seconds:8.2f} s {results[-1][3]:8.3f} s/MB {records:>9,} records")
    for size in [s for s in sizes if s <= 10 * MB]:
        seconds, records = min(ingest_seconds(long_line(size), raised=True) for _ in range(3 if size < MB else 1))
        results.append((RAISED, size, seconds, max(seconds - fixed, 0.0) / (size / MB), records))
        print(f"{RAISED:20} {label(size):>7} {seconds:8.2f} s {results[-1][3]:8.3f} s/MB {records:>9,} records")
    for size in [s for s in sizes if s <= 10 * MB]:
        seconds = mask_seconds(size)
        results.append(("safety net alone", size, seconds, seconds / (size / MB), 0))
        print(f"{'safety net alone':20} {label(size):>7} {seconds:8.2f} s {results[-1][3]:8.3f} s/MB")
    table = render(results, fixed)
    print("\n".join(table))
    if not args.no_write:
        write_section(MARK, table)


def label(size: int) -> str:
    return f"{size // MB} MB" if size >= MB else f"{size // KB} KB"


def render(results: list[tuple[str, int, float, float, int]], fixed: float) -> list[str]:
    per_mb_at_1mb = {shape: per_mb for shape, size, _, per_mb, _ in results if size == MB}
    lines = [
        MARK,
        "## Hostile input (`bench/hostile.py`)",
        "",
        f"One POS file per case, ingested whole into a fresh lake ({date.today()}, `make bench-hostile`). "
        f"s/MB is net of the fixed cost of a run (a file of 30 good rows: {fixed:.2f} s); the ratio compares it with "
        "the 1 MB case of the same shape, so 1.0 all the way down the column is linear. Below 1 MB the fixed cost "
        "is most of the time and the ratio is noise. Lines over the 1 MiB line limit are read once (hashed, never "
        "held) and quarantined, which is why a 10 MB line costs less per MB than a 1 MB one; with the limits raised "
        "the line is parsed, masked and landed whole; the last rows time the safety net alone on the same junk.",
        "",
        "| input | size | seconds | s/MB | ratio to 1 MB | records |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for shape, size, seconds, per_mb, records in results:
        base = per_mb_at_1mb.get(shape)
        ratio = f"{per_mb / base:.2f}" if base else "-"
        lines.append(f"| {shape} | {label(size)} | {seconds:.2f} | {per_mb:.3f} | {ratio} | {records:,} |")
    lines.append(MARK)
    return lines


if __name__ == "__main__":
    main()
