"""How a Spark session reaches a lake on Azure storage: the settings' ``storage`` section (the very credentials
delta-rs is given) said in Hadoop's ABFS terms, so that one section configures both engines.

ABFS is hadoop-azure's driver (pinned in ``spark_jars.txt``; pyspark's Hadoop 3.5 has no WASB any more). Against
Azurite, which has no ADLS Gen2 (dfs) endpoint, ABFS runs in blob mode: the account is declared without a
hierarchical namespace and every call goes to the blob service, at the emulator's address. Azurite speaks plain
HTTP, and ``abfss://`` is TLS by definition in Hadoop (no setting turns it off), so Spark reaches an emulated lake
as ``abfs://``, the same container, account and path.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from retreasure.settings import EMULATOR_ACCOUNT, EMULATOR_KEY, StorageSettings, azure_account, is_azure_uri

DFS_SUFFIX = "dfs.core.windows.net"
DEFAULT_EMULATOR_URL = "http://127.0.0.1:10000"  # delta-rs's default for an emulated lake, Azurite's own
# Hadoop's names for the ways in (org.apache.hadoop.fs.azurebfs).
FIXED_SAS_PROVIDER = "org.apache.hadoop.fs.azurebfs.sas.FixedSASTokenProvider"
MSI_PROVIDER = "org.apache.hadoop.fs.azurebfs.oauth2.MsiTokenProvider"
# Blob mode for an account without a hierarchical namespace (the emulator), over plain HTTP, with the JDK's HTTP
# client: the combination run against Azurite (docs/azure.md); others were not tried.
_EMULATOR_CONF = {
    "fs.azure.account.hns.enabled": "false",
    "fs.azure.fns.account.service.type": "BLOB",
    "fs.azure.ingress.service.type": "BLOB",
    "fs.azure.networking.library": "JDK_HTTP_URL_CONNECTION",
    "fs.azure.always.use.https": "false",
}


def hadoop_conf(lake_uri: str, storage: StorageSettings) -> dict[str, str]:
    """The Hadoop settings (without Spark's ``spark.hadoop.`` prefix) that let ABFS read and write the lake at
    ``lake_uri`` as the storage section says; none for a lake that is not on Azure. Values may be secrets: they are
    the settings' own, already registered with the log masker."""
    if not is_azure_uri(lake_uri):
        return {}
    account = storage.account_name or azure_account(lake_uri) or (EMULATOR_ACCOUNT if storage.use_emulator else None)
    if account is None:
        raise ValueError(f"the lake {lake_uri} names no storage account: set RETREASURE_STORAGE__ACCOUNT_NAME")
    host = f"{account}.{DFS_SUFFIX}"
    conf: dict[str, str] = {}
    if storage.use_emulator:
        conf |= _EMULATOR_CONF | {
            "fs.azure.abfs.endpoint": urlsplit(storage.emulator_url or DEFAULT_EMULATOR_URL).netloc
        }
    key = (
        storage.account_key.get_secret_value()
        if storage.account_key
        else (EMULATOR_KEY if storage.use_emulator else None)
    )
    if key is not None:
        conf |= {f"fs.azure.account.auth.type.{host}": "SharedKey", f"fs.azure.account.key.{host}": key}
    elif storage.sas_token is not None:
        conf |= {
            f"fs.azure.account.auth.type.{host}": "SAS",
            f"fs.azure.sas.token.provider.type.{host}": FIXED_SAS_PROVIDER,
            f"fs.azure.sas.fixed.token.{host}": storage.sas_token.get_secret_value().lstrip("?"),
        }
    elif storage.use_managed_identity:
        conf |= {
            f"fs.azure.account.auth.type.{host}": "OAuth",
            f"fs.azure.account.oauth.provider.type.{host}": MSI_PROVIDER,
        }
        if storage.managed_identity_client_id:
            conf[f"fs.azure.account.oauth2.client.id.{host}"] = storage.managed_identity_client_id
    return conf


def spark_uri(uri: str, storage: StorageSettings) -> str:
    """The URI Spark reaches a table at: the lake's own, but ``abfs://`` for an emulated ``abfss://`` lake (plain
    HTTP), and an ``az://<container>/<path>`` lake (delta-rs's blob name) as ABFS names it."""
    scheme, found, rest = uri.partition("://")
    if not found:  # a local path
        return uri
    if scheme == "az":
        container, _, path = rest.partition("/")
        account = storage.account_name or (EMULATOR_ACCOUNT if storage.use_emulator else None)
        if account is None:
            raise ValueError(f"{uri} names no storage account: set RETREASURE_STORAGE__ACCOUNT_NAME")
        scheme, rest = "abfss", f"{container}@{account}.{DFS_SUFFIX}/{path}"
    if scheme == "abfss" and storage.use_emulator:
        scheme = "abfs"
    return f"{scheme}://{rest}"
