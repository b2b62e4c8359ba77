"""SQL models (DuckDB dialect), one per file, each with its contract (``<name>.yml``) beside it."""
