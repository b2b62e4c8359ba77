"""The ingest table at 80 columns, for any mix of tables, statuses and sizes: every value readable whole."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from retreasure.lake.ingest_log import FAILED, PARTIAL, SUCCESS, IngestRun
from retreasure.terminal import print_ingest

NAMES = st.text(alphabet=string.ascii_lowercase + "_", min_size=3, max_size=30)  # the longest today: 26
TEXT = st.text(st.characters(blacklist_characters="…", blacklist_categories=("Cs",)), min_size=1, max_size=2000)
COUNTS = st.integers(min_value=0, max_value=10**9)


@st.composite
def ingest_runs(draw: st.DrawFn) -> IngestRun:
    source, entity = draw(NAMES), draw(NAMES)
    run = IngestRun(
        "r1", source, entity, f"bronze.{source}_{entity}", status=draw(st.sampled_from([SUCCESS, PARTIAL, FAILED]))
    )
    run.records, run.new_records, run.malformed = draw(COUNTS), draw(COUNTS), draw(COUNTS)
    run.files = draw(st.integers(min_value=0, max_value=10**6))
    run.duration_s = draw(st.floats(min_value=0, max_value=99_999, allow_nan=False))
    run.error = draw(st.none() | TEXT)
    run.retries, run.requests = draw(COUNTS), draw(COUNTS)
    run.last_retry = draw(st.none() | TEXT) if run.retries else None
    return run


@given(st.lists(ingest_runs(), min_size=1, max_size=20))
def test_the_ingest_table_reads_whole_at_80_columns(runs: list[IngestRun]) -> None:
    console = Console(width=80, record=True, force_terminal=False, color_system=None)
    print_ingest(console, runs)
    text = console.export_text()
    lines = text.splitlines()
    assert all(cell_len(line) <= 80 for line in lines), max(lines, key=cell_len)  # cells, as a terminal counts
    assert "…" not in text
    rows = "\n".join(lines)
    for run in runs:
        for value in (run.records, run.new_records, run.malformed):
            assert f"{value:,}" in rows  # counts are never cut
        assert run.status in rows
