"""Dagster orchestration built from the declarations: one asset per bronze table (from the connectors) and per
model (from the SQL files and their contracts), with partitions, schedules, a landing sensor, retries, asset
checks, incidents and alerts. ``retreasure.pipeline.definitions:defs`` is what Dagster loads.
"""
