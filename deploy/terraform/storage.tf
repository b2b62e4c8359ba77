# The lake: ADLS Gen2 (hierarchical namespace), a file system for the lake (its layers are folders in it, as on a
# laptop: the platform takes one root) and one for the landing file drops.
resource "azurerm_storage_account" "lake" {
  name                            = "${var.name}${var.environment}${local.suffix}"
  resource_group_name             = azurerm_resource_group.platform.name
  location                        = azurerm_resource_group.platform.location
  account_kind                    = "StorageV2"
  account_tier                    = "Standard"
  account_replication_type        = var.storage_replication
  is_hns_enabled                  = true # ADLS Gen2: abfss:// paths, atomic renames for Delta's log
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  allow_nested_items_to_be_public = false
  # delta-rs and Spark sign requests with the account key, read from Key Vault (storage--account-key).
  shared_access_key_enabled = true
  local_user_enabled        = false # no SFTP users: the platform is the only writer
  sas_policy {
    expiration_period = "01.00:00:00" # a SAS someone hands out lives a day at most (logged past it)
  }
  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }
  tags = local.tags
}

resource "azurerm_storage_container" "lake" {
  for_each              = toset(var.file_systems)
  name                  = each.key
  storage_account_id    = azurerm_storage_account.lake.id
  container_access_type = "private"
}
