"""Serving gold to people and systems: the HTTP API, finance exports and the dashboards."""
