"""What a server process sets up before it serves: its logging, the app, and the collector out of the way.

`retreasure serve` runs it in its own process; with ``--workers N`` uvicorn starts N processes that each build
their app through ``worker_app`` (each with its own read copies and kept answers), the command line's choices
reaching them through the environment.
"""

from __future__ import annotations

import gc
import logging
import os

from fastapi import FastAPI

from retreasure import log
from retreasure.serving.api.app import create_app
from retreasure.settings import Settings, get_settings

# `serve --no-access-log` as the worker processes see it.
ACCESS_LOG_ENV = "RETREASURE_SERVE_ACCESS_LOG"


def serving_app(settings: Settings, access_log: bool) -> FastAPI:
    """The app over ``settings``' lake, with the server's logging set, and everything loaded frozen."""
    if access_log:  # whatever the CLI's level (WARNING by default), a server keeps its access log
        logging.getLogger("retreasure.api").setLevel(logging.INFO)
    # uvicorn's own loggers write through the project's JSON handler; its access log is replaced by ours.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = logging.getLogger("retreasure").handlers
        logging.getLogger(name).propagate = False
    app = create_app(settings, access_log=access_log)
    # Everything imported so far lives as long as the server: out of the collector's way, so that a full
    # collection does not walk a million objects in the middle of a request (the tail of the latencies).
    gc.collect()
    gc.freeze()
    return app


def worker_app() -> FastAPI:
    """uvicorn's factory for one worker process of `serve --workers N`: settings from the environment."""
    log.configure()
    return serving_app(get_settings(), access_log=os.environ.get(ACCESS_LOG_ENV, "1") == "1")
