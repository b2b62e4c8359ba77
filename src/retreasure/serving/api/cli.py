"""`retreasure serve` and `retreasure keys ...`."""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from retreasure import log
from retreasure.serving.roles import ROLES

if TYPE_CHECKING:  # settings (pydantic) load when a command runs
    from retreasure.settings import Settings

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
console = Console()
logger = log.get_logger("api")


def _settings() -> Settings:
    from retreasure.settings import get_settings

    log.configure()
    return get_settings()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default: RETREASURE_SERVE__HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: RETREASURE_SERVE__API_PORT, 8000).")] = None,
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log one line per request (key id, never the key); off: ~40% less server CPU per kept answer."
        ),
    ] = True,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Server processes, each with its own copies and kept answers (one answers the first)."
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API on 127.0.0.1 (OpenAPI docs at /docs)."""
    import uvicorn

    from retreasure.serving.api.process import ACCESS_LOG_ENV, serving_app
    from retreasure.serving.api.server import server_config

    settings = _settings()
    bind = host or settings.serve.host
    if not is_loopback(bind):
        if host is None:
            # Reaching beyond this machine must be asked for on the command line, not inherited from a file.
            console.print(f"[red]Refusing to bind {bind}: not a loopback address. Pass --host {bind} to mean it.[/]")
            raise typer.Exit(2)
        logger.warning("serving beyond loopback", extra={"host": bind})
    options = {"access_log": False, "log_config": None}  # uvicorn's access log is replaced by ours
    port = port or settings.serve.api_port
    if workers == 1:
        uvicorn.Server(server_config(serving_app(settings, access_log), bind, port, **options)).run()
        return
    from uvicorn.supervisors import Multiprocess

    # Each worker builds its own app from the environment (settings, and this choice of access log).
    os.environ[ACCESS_LOG_ENV] = "1" if access_log else "0"
    config = server_config(
        "retreasure.serving.api.process:worker_app", bind, port, factory=True, workers=workers, **options
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()


Role = Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")]


@keys_app.command("create")
def create(
    role: Role,
    name: Annotated[str, typer.Option(help="Who or what the key is for.")] = "",
) -> None:
    """Create a key and print it once: only its hash is stored."""
    if role not in ROLES:
        console.print(f"[red]Unknown role {role!r}: expected one of {', '.join(ROLES)}.[/]")
        raise typer.Exit(2)
    from retreasure.lake import Lake  # DuckDB and Delta: loaded by the commands that use them
    from retreasure.serving import auth

    key = auth.create_key(Lake.from_settings(_settings()), role, name)
    typer.echo(key)
    console.print(f"[yellow]Key id {auth.key_id_of(key)} ({role}). Store the key now: it cannot be shown again.[/]")


@keys_app.command("list")
def list_() -> None:
    """Every key's id, role, name and dates (never the key)."""
    table = Table("key_id", "role", "name", "created_at", "revoked_at")
    from retreasure.lake import Lake  # DuckDB and Delta: loaded by the commands that use them
    from retreasure.serving import auth

    for row in auth.list_keys(Lake.from_settings(_settings())):
        table.add_row(row["key_id"], row["role"], row["name"], str(row["created_at"]), str(row["revoked_at"] or ""))
    console.print(table)


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id, as `keys list` shows it.")]) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from retreasure.lake import Lake  # DuckDB and Delta: loaded by the commands that use them
    from retreasure.serving import auth

    if not auth.revoke_key(Lake.from_settings(_settings()), key_id):
        console.print(f"[red]No active key with id {key_id!r}.[/]")
        raise typer.Exit(1)
    console.print(f"Revoked {key_id}.")
