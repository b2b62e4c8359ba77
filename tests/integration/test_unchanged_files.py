"""A run with nothing new reads no landed file again: a file whose size and mtime are those it had when it was
hashed keeps that hash (``ops.landing_file_stats``); a file whose size or mtime changed is hashed again, and lands
again only when its content changed."""

from __future__ import annotations

import os
from pathlib import Path

from retreasure.bronze.ingest import FILE_STATS, run_ingest
from retreasure.lake import Lake
from retreasure.settings import Settings


def event(number: int) -> bytes:
    return (
        f'{{"messageId": "E{number}", "timestamp": "2025-03-04T10:00:{number:02d}.000Z", '
        f'"context": {{"ip": "192.0.2.{number}"}}}}\n'
    ).encode()


def hashed_rows(lake: Lake) -> list[tuple[str, int]]:
    rows = lake.query(f"SELECT path, mtime_ns FROM {FILE_STATS} ORDER BY hashed_at, path", [FILE_STATS])
    return list(zip(rows.column("path").to_pylist(), rows.column("mtime_ns").to_pylist(), strict=True))


def test_unchanged_files_are_not_hashed_again_and_changed_ones_are(settings: Settings, lake: Lake) -> None:
    folder = Path(settings.landing_dir) / "web" / "clickstream"
    folder.mkdir(parents=True)
    first, second = folder / "2025-03-04.jsonl", folder / "2025-03-05.jsonl"
    first.write_bytes(event(1) + event(2))
    second.write_bytes(event(3))
    [clicks, _] = run_ingest(settings, lake, ["web"])
    assert clicks.new_records == 3 and clicks.files == 2
    assert [path for path, _ in hashed_rows(lake)] == [
        "web/clickstream/2025-03-04.jsonl",
        "web/clickstream/2025-03-05.jsonl",
    ]

    [clicks, _] = run_ingest(settings, lake, ["web"])  # nothing new: no file hashed, none read
    assert clicks.new_records == 0 and clicks.files == 0 and len(hashed_rows(lake)) == 2

    stat = second.stat()
    os.utime(second, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # touched, same content
    [clicks, _] = run_ingest(settings, lake, ["web"])
    assert clicks.new_records == 0 and clicks.files == 0, "hashed again, found landed, not read"
    assert hashed_rows(lake)[-1] == ("web/clickstream/2025-03-05.jsonl", stat.st_mtime_ns + 1_000_000_000)

    stat = first.stat()
    first.write_bytes(event(1) + event(4))  # the same size, another content
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    [clicks, _] = run_ingest(settings, lake, ["web"])
    assert clicks.new_records == 1 and clicks.files == 1 and len(hashed_rows(lake)) == 4

    [clicks, _] = run_ingest(settings, lake, ["web"])
    assert clicks.new_records == 0 and clicks.files == 0 and len(hashed_rows(lake)) == 4
