"""`retreasure export finance --period YYYY-MM`."""

from __future__ import annotations

import typer

export_app = typer.Typer(help="Period files for accounting.", no_args_is_help=True)
