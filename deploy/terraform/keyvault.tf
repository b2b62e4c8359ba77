# The platform's secrets. RBAC mode: who reads or sets them is a role assignment, like every other grant here.
resource "azurerm_key_vault" "platform" {
  name                       = "${local.stem}-${local.suffix}"
  resource_group_name        = azurerm_resource_group.platform.name
  location                   = azurerm_resource_group.platform.location
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  sku_name                   = "standard"
  rbac_authorization_enabled = true
  purge_protection_enabled   = true
  soft_delete_retention_days = 90
  tags                       = local.tags
}

# Whoever applies this sets the secrets below; the people and pipelines listed set the others (docs/azure.md).
resource "azurerm_role_assignment" "vault_officers" {
  for_each             = toset(concat([data.azurerm_client_config.current.object_id], var.key_vault_admins))
  scope                = azurerm_key_vault.platform.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = each.key
}

# The secrets Terraform can derive from what it created. Each is named as its setting (settings_vault.py):
# storage--account-key is RETREASURE_STORAGE__ACCOUNT_KEY. The PII keys and the marketplaces'
# tokens are set by hand, so that no key the lake depends on passes through this folder or its state.
resource "azurerm_key_vault_secret" "storage_account_key" {
  name         = "storage--account-key"
  value        = azurerm_storage_account.lake.primary_access_key
  key_vault_id = azurerm_key_vault.platform.id
  content_type = "RETREASURE_STORAGE__ACCOUNT_KEY"
  depends_on   = [azurerm_role_assignment.vault_officers]
}

resource "azurerm_key_vault_secret" "eventhubs_connection_string" {
  name         = "streaming--eventhubs-connection-string"
  value        = azurerm_eventhub_namespace_authorization_rule.platform_listen.primary_connection_string
  key_vault_id = azurerm_key_vault.platform.id
  content_type = "RETREASURE_STREAMING__EVENTHUBS_CONNECTION_STRING"
  depends_on   = [azurerm_role_assignment.vault_officers]
}
