"""The Spark session reaches a lake on Azure storage with the settings' storage section alone: each way in said in
ABFS terms for the lake's account, the emulator in blob mode over plain HTTP, nothing for a local lake."""

from __future__ import annotations

import pytest

from retreasure.engine.spark_storage import FIXED_SAS_PROVIDER, MSI_PROVIDER, hadoop_conf, spark_uri
from retreasure.settings import EMULATOR_KEY, Settings

LAKE = "abfss://lake@shopdata.dfs.core.windows.net/prod"
HOST = "shopdata.dfs.core.windows.net"


def _conf(lake_uri: str = LAKE, **storage: object) -> dict[str, str]:
    settings = Settings(_env_file=None, lake_uri=lake_uri, storage=storage)  # type: ignore[call-arg]
    return hadoop_conf(settings.lake_uri, settings.storage)


def test_a_local_lake_needs_nothing() -> None:
    assert hadoop_conf("./lake", Settings(_env_file=None).storage) == {}  # type: ignore[call-arg]


def test_the_account_key_signs_for_the_lakes_account() -> None:
    assert _conf(account_key="k3y==") == {
        f"fs.azure.account.auth.type.{HOST}": "SharedKey",
        f"fs.azure.account.key.{HOST}": "k3y==",
    }


def test_a_sas_token_is_a_fixed_token() -> None:
    assert _conf(sas_token="?sv=2024&sig=abc") == {
        f"fs.azure.account.auth.type.{HOST}": "SAS",
        f"fs.azure.sas.token.provider.type.{HOST}": FIXED_SAS_PROVIDER,
        f"fs.azure.sas.fixed.token.{HOST}": "sv=2024&sig=abc",
    }


def test_a_managed_identity_by_its_client_id() -> None:
    assert _conf(use_managed_identity=True, managed_identity_client_id="abc-123") == {
        f"fs.azure.account.auth.type.{HOST}": "OAuth",
        f"fs.azure.account.oauth.provider.type.{HOST}": MSI_PROVIDER,
        f"fs.azure.account.oauth2.client.id.{HOST}": "abc-123",
    }


def test_an_az_lake_takes_the_account_from_the_settings() -> None:
    conf = _conf("az://lake/prod", account_name="shopdata", account_key="k3y==")
    assert conf[f"fs.azure.account.key.{HOST}"] == "k3y=="
    storage = Settings(
        _env_file=None, lake_uri="az://lake/prod", storage={"account_name": "shopdata", "account_key": "k"}
    )  # type: ignore[call-arg]
    assert spark_uri("az://lake/prod/gold/t", storage.storage) == f"abfss://lake@{HOST}/prod/gold/t"


def test_the_emulator_is_reached_in_blob_mode_over_plain_http() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        lake_uri="abfss://lake@devstoreaccount1.dfs.core.windows.net/x",
        storage={"use_emulator": True, "emulator_url": "http://127.0.0.1:41234"},
    )
    conf = hadoop_conf(settings.lake_uri, settings.storage)
    assert conf["fs.azure.abfs.endpoint"] == "127.0.0.1:41234"
    assert conf["fs.azure.account.hns.enabled"] == "false"
    assert conf["fs.azure.account.key.devstoreaccount1.dfs.core.windows.net"] == EMULATOR_KEY
    # abfss:// is TLS by definition in Hadoop; the emulator speaks HTTP.
    uri = "abfss://lake@devstoreaccount1.dfs.core.windows.net/x/gold/t"
    assert spark_uri(uri, settings.storage) == uri.replace("abfss://", "abfs://")


def test_a_real_account_keeps_tls() -> None:
    storage = Settings(_env_file=None, lake_uri=LAKE, storage={"account_key": "k"}).storage  # type: ignore[call-arg]
    assert spark_uri(f"{LAKE}/gold/t", storage) == f"{LAKE}/gold/t"


def test_an_az_lake_without_an_account_is_refused() -> None:
    storage = Settings(_env_file=None, lake_uri="az://lake/x", storage={"account_key": "k"}).storage  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="ACCOUNT_NAME"):
        hadoop_conf("az://lake/x", storage)


def test_a_local_lake_is_reached_at_its_own_path() -> None:
    storage = Settings(_env_file=None, lake_uri="/srv/lake").storage  # type: ignore[call-arg]
    assert spark_uri("/srv/lake/bronze/ecb_fx_rates", storage) == "/srv/lake/bronze/ecb_fx_rates"
