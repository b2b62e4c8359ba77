"""`retreasure export finance --period YYYY-MM`: the month's files for accounting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from retreasure import log

export_app = typer.Typer(help="Period files for accounting.", no_args_is_help=True)
console = Console()


@export_app.command()
def finance(
    period: Annotated[str, typer.Option(help="Accounting month, YYYY-MM.")],
    out: Annotated[
        Path | None, typer.Option(help="Folder for the period folders (default <lake>/exports/finance).")
    ] = None,
    allow_open: Annotated[
        bool, typer.Option("--allow-open", help="Export a month that is not closed yet (provisional files).")
    ] = False,
) -> None:
    """Write the month's revenue, margin and tax reports as CSV, XLSX and Parquet, with a manifest."""
    from retreasure.serving.exports.finance import export_finance

    log.configure()
    from retreasure.lake import Lake  # DuckDB and Delta: loaded by the commands that use them
    from retreasure.settings import get_settings

    lake = Lake.from_settings(get_settings())
    try:
        export = export_finance(lake, period, out, allow_open=allow_open)
    except ValueError as exc:
        console.print(f"[red]Not exported:[/] {exc}")
        raise typer.Exit(2) from None
    table = Table(title=f"Finance {export.period}{'' if export.manifest['closed'] else ' (provisional)'}")
    for column, justify in (("file", "left"), ("report", "left"), ("format", "left"), ("rows", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for file in export.files:
        table.add_row(file["name"], file["report"], file["format"], f"{file['rows']:,}")
    console.print(table)
    console.print(f"Written to {export.folder} (manifest.json lists checksums and totals)")
