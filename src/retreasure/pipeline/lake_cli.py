"""`retreasure lake optimize`: compact tables' small files (the stream's), and vacuum what time travel no longer
needs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from retreasure.exitcodes import ExitCode
from retreasure.lake import RETENTION_HOURS

lake_app = typer.Typer(help="Looking after the lake's tables.", no_args_is_help=True)
console = Console()


@lake_app.command()
def optimize(
    table: Annotated[
        list[str] | None, typer.Option(help="A table to optimize, as layer.name (repeatable); all by default.")
    ] = None,
    vacuum: Annotated[
        bool, typer.Option("--vacuum", help="Delete the files no version of the retention window reads.")
    ] = False,
    retention_hours: Annotated[
        int, typer.Option(help="Time travel kept for readers: files a version this recent reads stay.")
    ] = RETENTION_HOURS,
) -> None:
    """Compact each table's small files into few (safe while the stream appends; a model's table in day order,
    holding the build lock; again, it does nothing), then list the files a vacuum would delete, or delete them with
    --vacuum. Exits 0, or 2 for an unknown table."""
    from retreasure import log
    from retreasure.engine.compaction import compact_models
    from retreasure.engine.models import load_models
    from retreasure.lake import Lake, TableRef  # DuckDB and Delta: loaded by the commands that use them
    from retreasure.lake.maintenance import optimize_tables
    from retreasure.settings import get_settings

    log.configure()
    lake = Lake.from_settings(get_settings())
    known = lake.tables()
    chosen = [TableRef.parse(t) for t in table] if table else known
    unknown = [str(t) for t in chosen if t not in known]
    if unknown:
        console.print(f"[red]No such table: {', '.join(unknown)}.[/]")
        raise typer.Exit(ExitCode.USAGE)
    # A model's table in day order (the builds' layout, engine/compaction.py); the others by delta-rs's compaction.
    models = {ref: model for ref, model in load_models().items() if ref in chosen}
    for compacted in compact_models(lake, models):
        if compacted.files_rewritten:
            console.print(
                f"{compacted.table}: {compacted.files_before:,} -> {compacted.files_after:,} files "
                f"({compacted.files_rewritten:,} small files rewritten in day order)"
            )
    for done in optimize_tables(lake, chosen, vacuum, retention_hours, compacted_elsewhere=models):
        verb = "deleted" if done.vacuum_applied else "to delete with --vacuum"
        console.print(
            f"{done.table}: {done.files_before:,} -> {done.files_after:,} files "
            f"({done.files_removed:,} compacted into {done.files_added:,}; version {done.version_after}); "
            f"{len(done.vacuum):,} old files {verb}"
        )
