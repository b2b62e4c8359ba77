# The platform's identity: what a host running `retreasure` (a VM, a container app) signs in as, and what the
# Databricks access connector uses for Unity Catalog's storage credential.
resource "azurerm_user_assigned_identity" "platform" {
  name                = "id-${local.stem}"
  resource_group_name = azurerm_resource_group.platform.name
  location            = azurerm_resource_group.platform.location
  tags                = local.tags
}

locals {
  platform_roles = {
    lake_data       = { scope = azurerm_storage_account.lake.id, role = "Storage Blob Data Contributor" }
    stream_receiver = { scope = azurerm_eventhub_namespace.stream.id, role = "Azure Event Hubs Data Receiver" }
    # A replay or a rehearsal publishes through the platform's identity; the web shop has its own policy.
    stream_sender = { scope = azurerm_eventhub_namespace.stream.id, role = "Azure Event Hubs Data Sender" }
    vault_secrets = { scope = azurerm_key_vault.platform.id, role = "Key Vault Secrets User" }
  }
}

resource "azurerm_role_assignment" "platform" {
  for_each             = local.platform_roles
  scope                = each.value.scope
  role_definition_name = each.value.role
  principal_id         = azurerm_user_assigned_identity.platform.principal_id
  principal_type       = "ServicePrincipal"
}
