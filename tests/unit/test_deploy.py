"""The Azure deployment is held to the platform it deploys: the Databricks bundle's tasks are command lines the CLI
parses, its environment names settings the platform reads, its secret references follow the vault's naming rule,
and the Terraform declares every resource docs/azure.md names, with the identity holding the roles it needs.

Neither the Databricks CLI nor the azurerm provider can be run here (no workspace, no registry of providers): the
bundle is checked against the keys it must have, the Terraform is parsed by python-hcl2 and its references resolved
by name. docs/azure.md lists what that leaves unverified.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, get_origin

import hcl2
import pytest
import typer.main
import yaml
from pydantic import BaseModel, SecretStr

from retreasure.cli import app
from retreasure.connectors.base import load_sources
from retreasure.settings import Settings, StreamingSettings
from retreasure.settings_vault import secret_name

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "deploy" / "databricks" / "databricks.yml"
TERRAFORM = ROOT / "deploy" / "terraform"
AZURE_DOC = ROOT / "docs" / "azure.md"
PREFIX = "RETREASURE_"
SECRET_REFERENCE = re.compile(r"\{\{secrets/\$\{var\.secret_scope\}/([A-Za-z0-9-]+)\}\}")
BUNDLE_VARIABLE = re.compile(r"\$\{var\.([a-z_]+)\}")
# Values for the bundle's variables that have no default, as a deployment passes them (--var).
DEPLOYED = {
    "storage_account": "retreasureprod1a2b3c",
    "lake_uri": "abfss://lake@retreasureprod1a2b3c.dfs.core.windows.net/",
    "eventhubs_namespace": "retreasure-prod-1a2b3c",
    "stream_consumer_group": "retreasure-stream-prod",
    "alert_email": "data-team@example.com",
    "shopify_base_url": "https://retreasure.myshopify.com",
    "etsy_shop_id": "31337",
    "run_as_service_principal": "00000000-0000-0000-0000-000000000000",
}


@cache
def bundle() -> dict[str, Any]:
    return yaml.safe_load(BUNDLE.read_text())


def jobs() -> dict[str, Any]:
    return bundle()["resources"]["jobs"]


def wheel_tasks() -> Iterator[tuple[str, dict[str, Any]]]:
    for job_name, job in jobs().items():
        for task in job["tasks"]:
            yield f"{job_name}.{task['task_key']}", task


def clusters() -> Iterator[tuple[str, dict[str, Any]]]:
    for job_name, job in jobs().items():
        for cluster in job["job_clusters"]:
            yield f"{job_name}.{cluster['job_cluster_key']}", cluster["new_cluster"]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# -- the bundle ----------------------------------------------------------------------------------------------------


def test_the_bundle_has_what_a_deployment_needs() -> None:
    config = bundle()
    assert config["bundle"]["name"] == "retreasure"
    wheel = config["artifacts"]["retreasure_wheel"]
    assert wheel["type"] == "whl" and (BUNDLE.parent / wheel["path"]).resolve() == ROOT, "the wheel of this project"
    assert "--package retreasure" in wheel["build"], "the platform's wheel, not the simulator's"
    assert config["targets"]["dev"]["mode"] == "development" and config["targets"]["dev"]["default"] is True
    prod = config["targets"]["prod"]
    assert prod["mode"] == "production" and "service_principal_name" in prod["run_as"]
    assert {"retreasure_hourly", "retreasure_nightly", "retreasure_stream"} <= set(jobs())
    for name in ("retreasure_hourly", "retreasure_nightly"):
        assert jobs()[name]["schedule"]["timezone_id"] == "UTC" and jobs()[name]["max_concurrent_runs"] == 1
    assert "continuous" in jobs()["retreasure_stream"], "the stream runs all the time and is restarted if it stops"
    for job_name, job in jobs().items():
        keys = {cluster["job_cluster_key"] for cluster in job["job_clusters"]}
        tasks = {task["task_key"] for task in job["tasks"]}
        for task in job["tasks"]:
            assert task["job_cluster_key"] in keys, f"{job_name}.{task['task_key']}: no such job cluster"
            assert {d["task_key"] for d in task.get("depends_on", [])} <= tasks - {task["task_key"]}


def test_every_variable_the_bundle_uses_is_declared_and_every_declared_one_is_used() -> None:
    text = BUNDLE.read_text()
    declared = set(bundle()["variables"])
    used = set(BUNDLE_VARIABLE.findall(text))
    assert used - declared == set(), "used but not declared"
    assert declared - used == set(), "declared but never used"
    undefaulted = {name for name, spec in bundle()["variables"].items() if "default" not in spec}
    assert undefaulted == set(DEPLOYED), "each variable without a default is one a deployment must pass"


def test_every_task_runs_the_wheels_entry_point_with_a_command_line_the_cli_parses() -> None:
    project = pyproject()["project"]
    cli = typer.main.get_command(app)
    commands = getattr(cli, "commands", {})
    without_engine = []
    for name, task in wheel_tasks():
        wheel_task = task["python_wheel_task"]
        assert wheel_task["package_name"] == project["name"]
        assert project["scripts"][wheel_task["entry_point"]] == "retreasure.cli:app", name
        assert task["libraries"] == [{"whl": "../../dist/retreasure-*.whl"}], f"{name}: the artifact's wheel"
        command, *arguments = wheel_task["parameters"]
        assert command in commands, f"{name}: `retreasure {command}` is not a command"
        if "--engine" in arguments and not any(p.name == "engine" for p in commands[command].params):
            at = arguments.index("--engine")
            arguments = arguments[:at] + arguments[at + 2 :]  # checked without it, and said below
            without_engine.append(name)
        # The command line as the CLI would parse it, without running it: an unknown option or a value outside an
        # option's choices is a usage error here, as it would be on the cluster.
        context = commands[command].make_context(command, list(arguments))
        assert context.params, name
    if without_engine:
        pytest.skip(f"`--engine` (the Spark engine) is not in this checkout; checked without it: {without_engine}")


def test_the_clusters_write_tables_delta_rs_and_duckdb_can_read_and_keep_time_in_utc() -> None:
    for name, cluster in clusters():
        conf = cluster["spark_conf"]
        assert conf["spark.databricks.delta.properties.defaults.enableDeletionVectors"] == "false", name
        assert conf["spark.databricks.delta.properties.defaults.columnMapping.mode"] == "none", name
        assert conf["spark.sql.session.timeZone"] == "UTC" and cluster["spark_env_vars"]["TZ"] == "UTC", name
        storage_key = conf["fs.azure.account.key.${var.storage_account}.dfs.core.windows.net"]
        assert SECRET_REFERENCE.fullmatch(storage_key), f"{name}: the account key is a secret reference"


def _declared_sections() -> dict[str, type[BaseModel]]:
    return {name: source.settings_model for name, source in load_sources().items() if source.settings_model}


def _setting(settings: Settings, variable: str) -> Any:
    """The value a RETREASURE_ variable gave the settings, walked field by field (a connector's section by its
    connector's model)."""
    first, *rest = variable.removeprefix(PREFIX).lower().split("__")
    if first in Settings.model_fields:
        value: Any = getattr(settings, first)
    else:
        value = settings.source(first, _declared_sections()[first])
    for part in rest:
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _deployed(value: str, secrets: dict[str, str]) -> str:
    """A bundle value as the cluster sees it: variables and secret references resolved."""
    value = SECRET_REFERENCE.sub(lambda m: secrets.setdefault(m.group(1), f"secret-value-of-{m.group(1)}"), value)
    defaults = {name: spec.get("default") for name, spec in bundle()["variables"].items()}
    return BUNDLE_VARIABLE.sub(lambda m: str(DEPLOYED.get(m.group(1), defaults[m.group(1)])), value)


@pytest.mark.parametrize("cluster_name", [name for name, _ in clusters()])
def test_every_variable_a_cluster_sets_is_a_setting_the_platform_reads(
    cluster_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = dict(clusters())[cluster_name]["spark_env_vars"]
    cli_variables = {p.envvar for p in typer.main.get_command(app).params if isinstance(p.envvar, str)}
    secrets: dict[str, str] = {}
    deployed = {variable: _deployed(str(value), secrets) for variable, value in environment.items()}
    for variable, value in deployed.items():
        monkeypatch.setenv(variable, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    for variable, value in deployed.items():
        if variable == "TZ" or variable in cli_variables:
            continue
        assert variable.startswith(PREFIX), variable
        assert str(_setting(settings, variable)) == value, f"{variable} does not reach the setting it names"
    for variable, value in environment.items():
        for name in SECRET_REFERENCE.findall(str(value)):
            assert name == secret_name(variable, PREFIX), (
                f"{variable}: its secret is named {secret_name(variable, PREFIX)}"
            )
    assert secrets, "the secrets come from the scope"


def test_the_stream_job_reads_the_event_hubs_the_terraform_creates() -> None:
    environment = dict(clusters())["retreasure_stream.stream"]["spark_env_vars"]
    assert "RETREASURE_STREAMING__EVENTHUBS_CONNECTION_STRING" in environment
    assert (
        environment["RETREASURE_STREAMING__BOOTSTRAP_SERVERS"]
        == "${var.eventhubs_namespace}.servicebus.windows.net:9093"
    )
    hubs = terraform_variable_default("eventhubs")
    assert sorted(hubs) == sorted(StreamingSettings().topics), "the event hubs are the topics the platform reads"
    assert terraform_local("stream_consumer_group") == "retreasure-stream-${var.environment}"
    assert "stream_consumer_group" in terraform_blocks("output")
    assert jobs()["retreasure_stream"]["tasks"][0]["python_wheel_task"]["parameters"] == ["stream"]


# -- the Terraform -------------------------------------------------------------------------------------------------

PARSE = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)


@cache
def terraform() -> dict[str, dict[str, Any]]:
    """Every file's parse, by file name."""
    return {
        path.name: hcl2.loads(path.read_text(), serialization_options=PARSE) for path in sorted(TERRAFORM.glob("*.tf"))
    }


def terraform_blocks(kind: str) -> dict[str, Any]:
    """Blocks of one kind across the files: variables and outputs by name, locals merged."""
    found: dict[str, Any] = {}
    for parsed in terraform().values():
        for block in parsed.get(kind, []):
            found.update(block)
    return found


def resources() -> dict[str, dict[str, Any]]:
    """Resources (and data sources, as ``data.<type>.<name>``) by address."""
    found = {}
    for kind, prefix in (("resource", ""), ("data", "data.")):
        for typed in terraform_blocks_list(kind):
            for resource_type, named in typed.items():
                for name, body in named.items():
                    found[f"{prefix}{resource_type}.{name}"] = body
    return found


def terraform_blocks_list(kind: str) -> list[dict[str, Any]]:
    return [block for parsed in terraform().values() for block in parsed.get(kind, [])]


def terraform_variable_default(name: str) -> Any:
    return terraform_blocks("variable")[name]["default"]


def terraform_local(name: str) -> Any:
    return terraform_blocks("locals")[name]


def test_the_terraform_parses_and_declares_the_azurerm_provider() -> None:
    assert set(terraform()) >= {"versions.tf", "variables.tf", "main.tf", "outputs.tf"}
    (requirements,) = terraform_blocks_list("terraform")[0]["required_providers"]
    assert requirements["azurerm"]["source"] == "hashicorp/azurerm"


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed on this machine")
def test_the_terraform_is_formatted_as_terraform_fmt_writes_it() -> None:
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-diff", "-recursive", str(TERRAFORM)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_every_reference_names_something_declared() -> None:
    text = "\n".join(path.read_text() for path in sorted(TERRAFORM.glob("*.tf")))
    declared = {
        "var": set(terraform_blocks("variable")),
        "local": set(terraform_blocks("locals")),
        "resource": {address for address in resources() if not address.startswith("data.")},
        "data": {address.removeprefix("data.") for address in resources() if address.startswith("data.")},
    }
    missing = [f"var.{n}" for n in re.findall(r"\bvar\.(\w+)", text) if n not in declared["var"]]
    missing += [f"local.{n}" for n in re.findall(r"\blocal\.(\w+)", text) if n not in declared["local"]]
    missing += [f"data.{t}" for t in re.findall(r"\bdata\.(azurerm_\w+\.\w+)", text) if t not in declared["data"]]
    references = re.findall(r"(?<![\w.\"])(azurerm_\w+\.\w+)\.", text)
    missing += [ref for ref in references if ref not in declared["resource"]]
    assert missing == []
    unused = [name for name in declared["var"] if f"var.{name}" not in text]
    assert unused == [], "declared variables nothing reads"


def test_the_lake_account_is_adls_gen2_with_the_lake_and_landing_file_systems() -> None:
    account = resources()["azurerm_storage_account.lake"]
    assert account["is_hns_enabled"] is True and account["min_tls_version"] == "TLS1_2"
    assert account["allow_nested_items_to_be_public"] is False
    containers = resources()["azurerm_storage_container.lake"]
    assert containers["for_each"] == "${toset(var.file_systems)}"
    assert set(terraform_variable_default("file_systems")) == {"lake", "landing"}
    # The lake is one root, its layers folders in it, as Lake lays them out on any URI.
    lake_uri = terraform_blocks("output")["lake_uri"]["value"]
    assert lake_uri.startswith('abfss://${azurerm_storage_container.lake["lake"].name}@')


def test_event_hubs_is_standard_with_the_platforms_hubs_and_consumer_group() -> None:
    namespace = resources()["azurerm_eventhub_namespace.stream"]
    assert namespace["sku"] == "Standard", "Basic has no Kafka endpoint"
    assert resources()["azurerm_eventhub.topic"]["for_each"] == "${var.eventhubs}"
    assert resources()["azurerm_eventhub_consumer_group.stream"]["name"] == "${local.stream_consumer_group}"
    listen = resources()["azurerm_eventhub_namespace_authorization_rule.platform_listen"]
    assert (listen["listen"], listen["send"], listen["manage"]) == (True, False, False)


def test_the_vault_is_rbac_and_holds_only_derived_secrets_named_as_their_settings() -> None:
    vault = resources()["azurerm_key_vault.platform"]
    assert vault["rbac_authorization_enabled"] is True and vault["purge_protection_enabled"] is True
    secrets = {
        address: body for address, body in resources().items() if address.startswith("azurerm_key_vault_secret.")
    }
    assert secrets
    for address, body in secrets.items():
        assert body["value"].startswith("${") and body["value"].endswith("}"), f"{address}: a literal secret in code"
        assert body["name"] == secret_name(body["content_type"], PREFIX), f"{address}: named as its variable"
        assert _setting_exists(body["content_type"]), f"{address}: {body['content_type']} is no setting"


def _setting_exists(variable: str) -> bool:
    first, *rest = variable.removeprefix(PREFIX).lower().split("__")
    field = Settings.model_fields.get(first)
    if field is None or not rest:
        return field is not None
    model = field.annotation
    return get_origin(model) is dict or rest[0] in getattr(model, "model_fields", {})


def test_the_platforms_identity_holds_its_roles_on_the_resources_it_uses() -> None:
    assignment = resources()["azurerm_role_assignment.platform"]
    assert assignment["principal_id"] == "${azurerm_user_assigned_identity.platform.principal_id}"
    assert assignment["for_each"] == "${local.platform_roles}"
    roles = {grant["role"]: grant["scope"] for grant in terraform_local("platform_roles").values()}
    assert roles == {
        "Storage Blob Data Contributor": "${azurerm_storage_account.lake.id}",
        "Azure Event Hubs Data Receiver": "${azurerm_eventhub_namespace.stream.id}",
        "Azure Event Hubs Data Sender": "${azurerm_eventhub_namespace.stream.id}",
        "Key Vault Secrets User": "${azurerm_key_vault.platform.id}",
    }
    connector = resources()["azurerm_databricks_access_connector.platform"]
    (identity,) = connector["identity"]
    assert identity["type"] == "UserAssigned" and identity["identity_ids"] == [
        "${azurerm_user_assigned_identity.platform.id}"
    ]
    assert resources()["azurerm_databricks_workspace.platform"]["sku"] == "${var.databricks_sku}"


def test_nothing_under_deploy_holds_a_secret() -> None:
    credential = re.compile(
        r"(AccountKey|SharedAccessKey|client_secret|password)\s*[=:]\s*[\"']?[A-Za-z0-9+/]{8,}", re.I
    )
    leaks = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in sorted((ROOT / "deploy").rglob("*"))
        if path.is_file()
        for match in credential.finditer(path.read_text())
    ]
    assert leaks == []


# -- the walk-through ----------------------------------------------------------------------------------------------


def test_the_doc_names_exactly_the_resources_and_jobs_the_templates_declare() -> None:
    doc = AZURE_DOC.read_text()
    named = set(re.findall(r"`(azurerm_\w+\.\w+)`", doc))
    declared = {address for address in resources() if not address.startswith("data.")}
    assert named - declared == set(), "the doc names resources the Terraform does not declare"
    assert declared - named == set(), "resources the doc does not mention"
    assert set(re.findall(r"`(retreasure_(?:hourly|nightly|stream))`", doc)) == set(jobs())
    referenced = {name for _, cluster in clusters() for name in SECRET_REFERENCE.findall(str(cluster))}
    documented = set(re.findall(r"`([a-z0-9]+(?:-{1,2}[a-z0-9]+)+)`", doc))
    assert referenced <= documented, "every secret the jobs read is in the doc's list of secrets"
