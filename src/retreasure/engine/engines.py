"""Which engine runs the models, by name: ``duckdb`` (the default, in process) or ``spark`` (the scale path)."""

from __future__ import annotations

from typing import Any

from retreasure.engine.runner import DUCKDB, ModelEngine

ENGINES = ("duckdb", "spark")


def model_engine(name: str, settings: Any = None) -> ModelEngine:
    """The engine called ``name``, configured from ``settings`` (the Spark section) when given."""
    if name == "duckdb":
        return DUCKDB
    if name == "spark":
        from retreasure.engine.spark import SparkEngine

        return SparkEngine.from_settings(settings) if settings is not None else SparkEngine()
    raise ValueError(f"unknown engine {name!r}: one of {', '.join(ENGINES)}")
