"""`retreasure dashboard`: the Streamlit dashboards on 127.0.0.1."""

from __future__ import annotations


def dashboard() -> None:
    """Start the dashboards on 127.0.0.1."""
    raise NotImplementedError
