"""Clear PII out of the vault, for the two uses that need it: shipping parcels and opted-in marketing lists.

Callers decide who may see what (the API reveals ship-to addresses to operations keys only, and turns e-mails
into SHA-256 hashes before marketing sees them); this module only turns tokens back into values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from retreasure.bronze.pii import VAULT, PiiMasker, normalise
from retreasure.lake.store import Lake
from retreasure.serving import read
from retreasure.settings import Settings

_REVEAL_SQL = "SELECT token, ciphertext FROM restricted.pii WHERE token IN (SELECT unnest($tokens))"


def reveal(lake: Lake, settings: Settings, tokens: Iterable[str]) -> dict[str, str]:
    """Clear value of each token found in the vault (tokens not in it are left out)."""
    wanted = sorted({t for t in tokens if t})
    # Asked of the read layer, so that an answer kept while the vault did not exist is renewed once it does.
    if not wanted or VAULT not in read.built(lake, [VAULT]):
        return {}
    masker = PiiMasker(settings.pii_hmac_key.get_secret_value(), settings.pii_vault_key.get_secret_value())
    # The vault is read like the gold tables (a copy per Delta version): it holds only ciphertext.
    found = read.rows(lake, _REVEAL_SQL, [VAULT], {"tokens": wanted})
    return {row["token"]: masker.reveal(row["ciphertext"]) for row in found}


def hashed_email(email: str) -> str:
    """SHA-256 hex of the normalised (trimmed, lower-cased) e-mail: the ad platforms' customer-list match key."""
    return hashlib.sha256(normalise("email", email).encode()).hexdigest()
