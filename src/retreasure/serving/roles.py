"""Who an API key speaks for: the roles the API grants access by (``serving.api.security``). Kept apart from the
key store (``serving.auth``, which needs the lake) so the command line names them without loading the lake."""

from __future__ import annotations

ROLES = ("leadership", "marketing", "operations", "finance", "admin")
