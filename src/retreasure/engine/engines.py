"""Which engine runs the models, by name: ``duckdb`` (the default, in process) or ``spark`` (the scale path)."""

from __future__ import annotations

from typing import Any

from retreasure.engine.runner import DUCKDB, DuckDBEngine, ModelEngine

ENGINES = ("duckdb", "spark")


def model_engine(name: str, settings: Any = None) -> ModelEngine:
    """The engine called ``name``, configured from ``settings`` (``build_workers``, the Spark section) when given."""
    if name == "duckdb":
        workers = getattr(settings, "build_workers", None)
        return DUCKDB if workers is None else DuckDBEngine(workers=workers)
    if name == "spark":
        from retreasure.engine.spark import SparkEngine

        return SparkEngine.from_settings(settings) if settings is not None else SparkEngine()
    raise ValueError(f"unknown engine {name!r}: one of {', '.join(ENGINES)}")
