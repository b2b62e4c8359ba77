output "resource_group_name" {
  value = azurerm_resource_group.platform.name
}

output "storage_account_name" {
  description = "The bundle's storage_account; RETREASURE_STORAGE__ACCOUNT_NAME."
  value       = azurerm_storage_account.lake.name
}

output "lake_uri" {
  description = "RETREASURE_LAKE_URI; the bundle's lake_uri."
  value       = "abfss://${azurerm_storage_container.lake["lake"].name}@${azurerm_storage_account.lake.name}.dfs.core.windows.net/"
}

output "landing_uri" {
  description = "Where file drops land: the Unity Catalog volume's location (the bundle's landing_dir is the volume)."
  value       = "abfss://${azurerm_storage_container.lake["landing"].name}@${azurerm_storage_account.lake.name}.dfs.core.windows.net/"
}

output "key_vault_uri" {
  description = "RETREASURE_KEY_VAULT_URL for hosts that read the vault themselves; the secret scope's DNS name."
  value       = azurerm_key_vault.platform.vault_uri
}

output "key_vault_id" {
  description = "The secret scope's resource id."
  value       = azurerm_key_vault.platform.id
}

output "eventhubs_namespace_name" {
  description = "The bundle's eventhubs_namespace."
  value       = azurerm_eventhub_namespace.stream.name
}

output "eventhubs_bootstrap_servers" {
  description = "RETREASURE_STREAMING__BOOTSTRAP_SERVERS."
  value       = "${azurerm_eventhub_namespace.stream.name}.servicebus.windows.net:9093"
}

output "stream_consumer_group" {
  description = "RETREASURE_STREAMING__GROUP_ID; the bundle's stream_consumer_group."
  value       = local.stream_consumer_group
}

output "platform_identity_client_id" {
  description = "AZURE_CLIENT_ID on a host that signs in as the platform's identity."
  value       = azurerm_user_assigned_identity.platform.client_id
}

output "platform_identity_id" {
  value = azurerm_user_assigned_identity.platform.id
}

output "databricks_workspace_url" {
  description = "The bundle's workspace host: https://<this>."
  value       = azurerm_databricks_workspace.platform.workspace_url
}

output "databricks_access_connector_id" {
  description = "For Unity Catalog's storage credential."
  value       = azurerm_databricks_access_connector.platform.id
}
