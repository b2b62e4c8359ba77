"""The one Dagster resource: the platform's settings and its lake, read from the environment when a step runs.

Secrets stay inside ``Settings`` (SecretStr, registered with the log masker); the resource's own config holds
only non-secret overrides, so nothing secret is ever part of a run's config or the Dagster UI.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from retreasure.engine.engines import model_engine
from retreasure.engine.runner import ModelEngine
from retreasure.lake import Lake
from retreasure.settings import AlertSettings, Settings, get_settings

# Set by `retreasure ui` for the processes Dagster starts: JSON log lines, secrets masked, as the CLI has.
JSON_LOGS_ENV = "RETREASURE_PIPELINE_JSON_LOGS"


class RetreasureResource(dg.ConfigurableResource):
    """Settings (``retreasure.settings.get_settings()``) and the lake they name."""

    lake_uri: str | None = None  # overrides RETREASURE_LAKE_URI
    landing_dir: str | None = None  # overrides RETREASURE_LANDING_DIR
    engine: str | None = None  # overrides RETREASURE_ENGINE: duckdb or spark

    def settings(self) -> Settings:
        settings = get_settings()
        updates: dict[str, object] = {}
        if self.lake_uri:
            updates["lake_uri"] = self.lake_uri
        if self.landing_dir:
            updates["landing_dir"] = Path(self.landing_dir)
        if self.engine:
            updates["engine"] = self.engine
        return settings.model_copy(update=updates) if updates else settings

    def lake(self) -> Lake:
        return Lake.from_settings(self.settings())

    def model_engine(self) -> ModelEngine:
        """The engine the settings name for the models (DuckDB in process, or Spark)."""
        settings = self.settings()
        return model_engine(settings.engine, settings)

    def alerts(self) -> AlertSettings:
        return self.settings().alerts
