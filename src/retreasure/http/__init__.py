"""Shared HTTP mechanism for API connectors: one client, three paginators."""
