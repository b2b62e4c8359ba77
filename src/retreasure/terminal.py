"""What the command line shows on a terminal: progress bars while work runs, then tables and short lines that
read at 80 columns. The JSON log goes to its file (``logs/retreasure.log``); none of it is printed here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:  # the lake (DuckDB, Delta, Arrow) is imported by the commands that use it, not at start-up
    from retreasure.lake import Lake
    from retreasure.lake.ingest_log import IngestRun
    from retreasure.settings import Settings


def progress_bar(console: Console) -> Progress:
    """A bar per step with its count, or a spinner where the total is unknown; gone once the step is done."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def ingest(
    console: Console,
    settings: Settings,
    lake: Lake,
    sources: list[str] | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[IngestRun], list[IngestRun]]:
    """(this run's entities, runs of earlier processes found dead and marked interrupted), with a bar over the
    entities and the records of the one under way."""
    from retreasure.bronze.ingest import run_ingest
    from retreasure.connectors.base import load_sources

    registry = load_sources()
    total = sum(len(registry[name].entities) for name in sources or registry)
    interrupted: list[IngestRun] = []
    with progress_bar(console) as bar:
        task = bar.add_task("Ingesting", total=total)

        def progress(label: str, records: int) -> None:
            bar.update(task, description=f"Ingesting {label.removeprefix('bronze.')}: {records:,} records")

        def finished(run: IngestRun) -> None:
            bar.update(task, advance=1, description="Ingesting")

        runs = run_ingest(settings, lake, sources, since, until, progress, finished, interrupted.append)
    return runs, interrupted


def print_ingest(console: Console, runs: list[IngestRun], interrupted: Iterable[IngestRun] = ()) -> None:
    """One row per bronze table; what needs a look (errors, refused files, warnings, retries) as lines below."""
    from retreasure.lake.ingest_log import FAILED, INTERRUPTED, PARTIAL, SUCCESS, summarise_warnings

    colours = {SUCCESS: "green", PARTIAL: "yellow", FAILED: "red", INTERRUPTED: "red"}
    table = Table(title="Ingest into bronze", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    table.add_column("table", overflow="fold")  # a long name wraps rather than losing its end
    table.add_column("status", no_wrap=True)
    for column in ("records", "new", "bad", "files", "secs"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in runs:
        table.add_row(
            r.bronze_table.removeprefix("bronze."),
            f"[{colours.get(r.status, 'red')}]{r.status}[/]",
            f"{r.records:,}",
            f"{r.new_records:,}",
            f"{r.malformed:,}",
            f"{r.files:,}" if r.files else "-",
            f"{r.duration_s:.1f}",
        )
    console.print(table)
    console.print("[dim]bad: malformed records, kept raw in bronze and copied to quarantine.*[/]")
    for r in interrupted:
        console.print(
            f"[red]interrupted[/] {r.source}.{r.entity} (run {r.run_id}, started {r.started_at:%Y-%m-%d %H:%M}Z): "
            "its process ended before it completed; a run of that source takes what it had not landed."
        )
    for r in runs:
        if r.error:
            console.print(f"[{colours.get(r.status, 'red')}]{r.status}[/] {r.source}.{r.entity}: {shorten(r.error)}")
        for warning in summarise_warnings(r.warnings):
            console.print(f"[yellow]warning[/] {r.source}.{r.entity}: {warning}")
    for source, (retries, requests, cause) in retries_by_source(runs).items():
        console.print(f"[yellow]retries[/] {source}: {retries:,} of {requests:,} requests; last: {shorten(cause, 120)}")


def retries_by_source(runs: Iterable[IngestRun]) -> dict[str, tuple[int, int, str]]:
    """source -> (retried requests, requests, the last retry's cause), for sources that retried at all."""
    summary: dict[str, tuple[int, int, str]] = {}
    for r in runs:
        retries, requests, cause = summary.get(r.source, (0, 0, ""))
        summary[r.source] = (retries + r.retries, requests + r.requests, r.last_retry or cause)
    return {source: totals for source, totals in summary.items() if totals[0]}


def shorten(text: str, limit: int = 300) -> str:
    """At most ``limit`` characters, saying how much more the ingest log holds. The text often comes from a
    server or a file (an error body, a retry's cause): control characters are shown escaped, never sent to the
    terminal, where an escape sequence could redraw the screen."""
    text = " ".join(text.split())
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]} (+{len(text) - limit:,} characters in ops.ingest_log)"
