"""`retreasure ingest` run as deployed with only a Key Vault URL: the PII keys and the shop's token come from the
vault, the environment still wins over it, and no vault value reaches the output or the log.

Azure's ``SecretClient`` is replaced in the subprocess by tests/stubs (first on its PYTHONPATH); the fake Shopify
server checks the token for real.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from retreasure.bronze.pii import PiiMasker
from retreasure.lake import Lake, TableRef
from retreasure_sim.model import Truth
from retreasure_sim.servers.shopify import ShopifyServer
from tests.helpers import cli_env

STUBS = Path(__file__).parents[1] / "stubs"
TOKEN = "shpat_vault_0f1e2d3c4b5a69788796"
VAULT_HMAC_KEY = "vault-hmac-key-5b3c0e9a71d24f68"
VAULT_FERNET_KEY = Fernet.generate_key().decode()
ORDERS = TableRef("bronze", "shopify_orders")
PII = TableRef("restricted", "pii")


@pytest.fixture(scope="module")
def shopify(clean_truth: Truth) -> Iterator[ShopifyServer]:
    server = ShopifyServer(clean_truth, {"access_token": TOKEN}, restore_rate=1_000_000.0).start()
    yield server
    server.stop()


def ingest_with_vault(root: Path, server: ShopifyServer, vault: dict[str, str | None], **env: str) -> tuple[int, str]:
    """`retreasure ingest --source shopify` with the vault holding ``vault``; its exit code, output and log."""
    secrets = root / "vault.json"
    secrets.write_text(json.dumps(vault))
    environment = cli_env(
        root,
        PYTHONPATH=str(STUBS),
        KEYVAULT_STUB_SECRETS=str(secrets),
        RETREASURE_KEY_VAULT_URL="https://retreasure-test.vault.azure.net/",
        RETREASURE_SHOPIFY__BASE_URL=server.url,
        RETREASURE_LOG_FILE=str(root / "retreasure.log"),
        RETREASURE_LOG_LEVEL="DEBUG",
    )
    for variable in ("RETREASURE_PII_HMAC_KEY", "RETREASURE_PII_VAULT_KEY"):
        environment.pop(variable)  # the PII keys come from the vault only
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "retreasure", "ingest", "--source", "shopify", "--since", "2025-03-01T00:00:00Z"],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    log = (root / "retreasure.log").read_text() if (root / "retreasure.log").exists() else ""
    return result.returncode, result.stdout + result.stderr + log


def test_ingest_reads_its_keys_and_token_from_the_vault_and_shows_none_of_them(
    shopify: ShopifyServer, tmp_path: Path
) -> None:
    vault = {
        "pii-hmac-key": VAULT_HMAC_KEY,
        "pii-vault-key": VAULT_FERNET_KEY,
        "shopify--access-token": TOKEN,
        "etsy--api-key": None,  # disabled: never read
    }
    code, shown = ingest_with_vault(tmp_path, shopify, vault)
    assert code == 0, shown[-3000:]
    lake = Lake(tmp_path / "lake")
    assert lake.query(f"SELECT count(*) AS n FROM {ORDERS}", [ORDERS]).to_pylist()[0]["n"] > 0
    # Tokens are keyed with the vault's HMAC key, clear values sealed with its Fernet key.
    sealed = lake.query(f"SELECT token, kind, ciphertext FROM {PII} ORDER BY token LIMIT 5", [PII]).to_pylist()
    assert sealed
    for row in sealed:
        clear = Fernet(VAULT_FERNET_KEY.encode()).decrypt(row["ciphertext"]).decode()
        assert PiiMasker(VAULT_HMAC_KEY).token(row["kind"], clear) == row["token"]
    assert '"level": "info"' in shown, "the log was written"
    leaks = [name for name, value in vault.items() if value and value in shown]
    assert leaks == []


def test_the_environment_wins_over_the_vault(shopify: ShopifyServer, tmp_path: Path) -> None:
    stale = "shpat_stale_in_the_vault_11223344"
    vault = {"pii-hmac-key": VAULT_HMAC_KEY, "pii-vault-key": VAULT_FERNET_KEY, "shopify--access-token": stale}
    refused, shown = ingest_with_vault(tmp_path / "vault", shopify, vault)
    assert refused == 1 and stale not in shown, "the vault's stale token is refused, and masked"
    overridden, shown = ingest_with_vault(tmp_path / "env", shopify, vault, RETREASURE_SHOPIFY__ACCESS_TOKEN=TOKEN)
    assert overridden == 0, shown[-3000:]
    assert TOKEN not in shown and VAULT_HMAC_KEY not in shown


@pytest.fixture(autouse=True)
def _roots(tmp_path: Path) -> None:
    for name in ("vault", "env"):
        (tmp_path / name).mkdir()
