"""`retreasure dashboard`: the Streamlit dashboards on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

APP = Path(__file__).with_name("app.py")
console = Console()


def streamlit_argv(host: str, port: int) -> list[str]:
    """`streamlit run` on loopback, headless, with no usage statistics and no development mode."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "viewer",
        "--theme.base",
        "light",
    ]


def dashboard(
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: the settings' dashboard_port).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: 127.0.0.1).")] = None,
) -> None:
    """Start the dashboards (Streamlit) over the configured lake. Ctrl-C or SIGTERM stops them."""
    from retreasure.lake import Lake  # DuckDB and Delta: loaded by the commands that use them
    from retreasure.settings import get_settings

    settings = get_settings()
    host = host or settings.serve.host
    port = port or settings.serve.dashboard_port
    # Streamlit reads ~/.streamlit for credentials and config: a private, empty home keeps it from asking for an
    # e-mail, writing into the user's home or phoning home, whatever that folder holds.
    with tempfile.TemporaryDirectory(prefix="retreasure-dashboard-") as home:
        env = os.environ | {
            "HOME": home,
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            "STREAMLIT_SERVER_HEADLESS": "true",
            # The app runs in its own process: it must find the same lake as this command did.
            "RETREASURE_LAKE_URI": Lake.from_settings(settings).uri,
        }
        console.print(f"Dashboards on http://{host}:{port} over {settings.lake_uri}; Ctrl-C stops them.")
        code = _run(streamlit_argv(host, port), env)
    raise typer.Exit(code if code >= 0 else 128 - code)


def _run(argv: list[str], env: dict[str, str]) -> int:
    """Run the server as a child, passing it SIGINT and SIGTERM; its exit code (negative: killed by a signal)."""
    # A shell starts a background job with SIGINT ignored; restore the default so Ctrl-C reaches the child too.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    child = subprocess.Popen(argv, env=env, cwd=Path.cwd())  # noqa: S603

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    return child.wait()
