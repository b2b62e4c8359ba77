"""A lake on Azure storage is reached with the credentials of the settings' storage section only: masked in logs,
and refused at once when none is configured, never left to delta-rs's quiet managed-identity attempt."""

from __future__ import annotations

import io
import json
import logging

import pytest

from retreasure import log
from retreasure.settings import EMULATOR_KEY, Settings, azure_account, is_azure_uri


def test_credentials_come_from_the_settings_and_are_never_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETREASURE_LAKE_URI", "abfss://lake@prodaccount.dfs.core.windows.net/retreasure")
    # No way in configured: refused at once, not left to delta-rs's silent managed-identity attempt.
    with pytest.raises(ValueError, match="no way in is configured"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("RETREASURE_STORAGE__ACCOUNT_KEY", "c2VjcmV0LWFjY291bnQta2V5")
    keyed = Settings(_env_file=None)  # type: ignore[call-arg]
    assert keyed.delta_storage_options() == {"account_key": "c2VjcmV0LWFjY291bnQta2V5"}
    stream = io.StringIO()
    log.configure("INFO", stream)
    log.get_logger("test").info("opening with %s", keyed.delta_storage_options())
    logging.getLogger("retreasure").handlers.clear()
    assert "c2VjcmV0LWFjY291bnQta2V5" not in stream.getvalue() and "***" in json.loads(stream.getvalue())["msg"]
    assert "c2VjcmV0LWFjY291bnQta2V5" not in repr(keyed)
    monkeypatch.delenv("RETREASURE_STORAGE__ACCOUNT_KEY")
    monkeypatch.setenv("RETREASURE_STORAGE__USE_MANAGED_IDENTITY", "true")
    monkeypatch.setenv("RETREASURE_STORAGE__MANAGED_IDENTITY_CLIENT_ID", "0000-client")
    identity = Settings(_env_file=None)  # type: ignore[call-arg]
    assert identity.delta_storage_options() == {"client_id": "0000-client"}
    monkeypatch.delenv("RETREASURE_STORAGE__USE_MANAGED_IDENTITY")
    monkeypatch.delenv("RETREASURE_STORAGE__MANAGED_IDENTITY_CLIENT_ID")
    monkeypatch.setenv("RETREASURE_LAKE_URI", "az://lake/retreasure")
    monkeypatch.setenv("RETREASURE_STORAGE__USE_EMULATOR", "true")
    emulated = Settings(_env_file=None)  # type: ignore[call-arg]
    assert emulated.delta_storage_options() == {
        "use_emulator": "true",
        "account_key": EMULATOR_KEY,
        "account_name": "devstoreaccount1",
    }
    # A local lake passes nothing to delta-rs.
    monkeypatch.setenv("RETREASURE_LAKE_URI", "lake")
    assert Settings(_env_file=None).delta_storage_options() == {}  # type: ignore[call-arg]


def test_azure_uris_and_their_account() -> None:
    assert is_azure_uri("abfss://lake@acct.dfs.core.windows.net/x") and is_azure_uri("az://lake/x")
    assert not is_azure_uri("/data/lake") and not is_azure_uri("file:///data/lake") and not is_azure_uri("s3://b/x")
    assert azure_account("abfss://lake@acct.dfs.core.windows.net/x") == "acct"
    assert azure_account("az://lake/x") is None
