"""PII tokens: keyed, joinable across channels, never the clear value; the vault gives it back encrypted."""

from __future__ import annotations

from retreasure.bronze.pii import VAULT, PiiMasker
from retreasure.lake import Lake
from retreasure.records.pii import PiiSpec
from tests.conftest import HMAC_KEY, VAULT_KEY

SPEC = PiiSpec({"email": "email", "customer.phone": "phone", "addresses.address1": "street", "*.lastName": "name"})


def test_declared_paths_are_tokenised_through_lists_and_wildcards() -> None:
    masker = PiiMasker(HMAC_KEY, VAULT_KEY)
    record = {
        "id": 1,
        "email": "Ann@Example.com",
        "customer": {"phone": "+49 30 1234567", "lastName": "Weber"},
        "addresses": [{"address1": "1 Main Street", "city": "Berlin"}],
        "note": "call bob@example.org",
    }
    masked = masker.mask(record, SPEC)
    assert masked["id"] == 1 and masked["addresses"][0]["city"] == "Berlin"
    assert masked["email"].startswith("pii:email:")
    assert masked["customer"]["phone"].startswith("pii:phone:")
    assert masked["customer"]["lastName"].startswith("pii:name:")
    assert masked["addresses"][0]["address1"].startswith("pii:street:")
    assert "Weber" not in str(masked) and "Main Street" not in str(masked) and "Ann@" not in str(masked)
    assert record["email"] == "Ann@Example.com", "the input is not modified"


def test_tokens_join_across_channels_but_depend_on_the_key() -> None:
    masker = PiiMasker(HMAC_KEY)
    assert masker.token("email", " ANN@example.com") == masker.token("email", "ann@example.com")
    assert masker.token("phone", "+49 (30) 123") == masker.token("phone", "+4930123")
    assert PiiMasker("another-key").token("email", "ann@example.com") != masker.token("email", "ann@example.com")


def test_an_undeclared_email_is_caught_by_the_safety_net() -> None:
    masker = PiiMasker(HMAC_KEY)
    assert masker.mask({"contact": "x@example.com"}, PiiSpec({}))["contact"].startswith("pii:email:")
    assert "x@example.com" not in masker.mask_text('{"broken": "x@example.com",')
    broken_row = "BER-1,1,2025-03-01T10:00:00+01:00,,+44 161 2072525,10.0.0.7,12,50"
    masked = masker.mask_text(broken_row)
    assert "2072525" not in masked and "10.0.0.7" not in masked
    assert masked.startswith("BER-1,1,2025-03-01T10:00:00+01:00,,pii:phone:") and masked.endswith(",12,50")


def test_the_vault_keeps_clear_values_encrypted_once_per_token(lake: Lake) -> None:
    masker = PiiMasker(HMAC_KEY, VAULT_KEY)
    token = masker.mask({"email": "ann@example.com"}, SPEC)["email"]
    assert masker.flush_vault(lake, "shop") == 1
    masker.mask({"email": "ann@example.com"}, SPEC)
    assert masker.flush_vault(lake, "shop") == 0
    row = lake.query(f"SELECT * FROM {VAULT}", [VAULT]).to_pylist()[0]
    assert row["token"] == token and b"ann@example.com" not in row["ciphertext"]
    assert masker.reveal(row["ciphertext"]) == "ann@example.com"
