"""The HTTP API for fulfillment, marketing, finance and leadership (FastAPI)."""
