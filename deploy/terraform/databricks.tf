# The Databricks workspace where the bundle (deploy/databricks) runs the jobs, and its access connector.
resource "azurerm_databricks_workspace" "platform" {
  name                        = "dbw-${local.stem}"
  resource_group_name         = azurerm_resource_group.platform.name
  location                    = azurerm_resource_group.platform.location
  sku                         = var.databricks_sku
  managed_resource_group_name = "rg-${local.stem}-databricks"
  tags                        = local.tags
}

# Unity Catalog reaches the lake as the platform's identity (Storage Blob Data Contributor, identity.tf).
resource "azurerm_databricks_access_connector" "platform" {
  name                = "ac-${local.stem}"
  resource_group_name = azurerm_resource_group.platform.name
  location            = azurerm_resource_group.platform.location
  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.platform.id]
  }
  tags = local.tags
}

# A Key Vault-backed secret scope reads the vault as the AzureDatabricks application.
resource "azurerm_role_assignment" "databricks_secret_scope" {
  count                = var.databricks_app_object_id == null ? 0 : 1
  scope                = azurerm_key_vault.platform.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = var.databricks_app_object_id
  principal_type       = "ServicePrincipal"
}
