"""Runs SQL models over the lake: discovery by convention, write modes, incremental windows."""
