"""SQL models (DuckDB dialect), one per file, each with its contract (``<name>.yml``) beside it."""

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent  # the command line's default, known without loading the engine
