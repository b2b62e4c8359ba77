"""`retreasure serve` and `retreasure keys ...`."""

from __future__ import annotations

import typer

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)


def serve() -> None:
    """Serve the HTTP API on 127.0.0.1."""
    raise NotImplementedError
