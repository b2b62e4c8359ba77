variable "name" {
  description = "Short name of the deployment, the stem of every resource name (lower-case letters and digits)."
  type        = string
  default     = "retreasure"
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,11}$", var.name))
    error_message = "name: 3 to 12 lower-case letters and digits, starting with a letter (storage account names allow no dash)."
  }
}

variable "environment" {
  description = "dev or prod: part of every name, and the consumer group's suffix (one group per lake)."
  type        = string
  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment: dev or prod."
  }
}

variable "location" {
  description = "Azure region of every resource."
  type        = string
  default     = "westeurope"
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}

variable "file_systems" {
  description = <<-EOT
    ADLS Gen2 file systems: `lake`, the lake's root (RETREASURE_LAKE_URI), in which the platform lays out its layers
    as folders (bronze/, silver/, gold/, quarantine/, restricted/, ops/); and `landing`, where file drops arrive.
  EOT
  type        = list(string)
  default     = ["lake", "landing"]
  validation {
    condition     = contains(var.file_systems, "lake") && contains(var.file_systems, "landing")
    error_message = "file_systems: the lake and the landing file systems are both needed."
  }
}

variable "storage_replication" {
  description = "Replication of the lake's account (ZRS survives a zone; GRS a region)."
  type        = string
  default     = "ZRS"
}

variable "eventhubs" {
  description = "Event hubs (Kafka topics) and their partitions: docs/streaming.md, partition sizing."
  type        = map(number)
  default = {
    "web.clickstream"  = 4
    "web.transactions" = 2
  }
}

variable "eventhubs_retention_days" {
  description = "Days an event hub keeps messages (1 to 7 on Standard): how long the stream may stop without loss."
  type        = number
  default     = 7
}

variable "eventhubs_capacity" {
  description = "Throughput units of the namespace (auto-inflate raises them up to eventhubs_max_capacity)."
  type        = number
  default     = 1
}

variable "eventhubs_max_capacity" {
  description = "Upper bound of auto-inflate."
  type        = number
  default     = 4
}

variable "databricks_sku" {
  description = "Databricks workspace tier: premium for Unity Catalog and secret scope permissions."
  type        = string
  default     = "premium"
}

variable "databricks_app_object_id" {
  description = <<-EOT
    Object id, in this tenant, of the AzureDatabricks enterprise application (application id
    2ff814a6-3304-4ab8-85cb-cd0e6f879c1d): `az ad sp show --id 2ff814a6-3304-4ab8-85cb-cd0e6f879c1d --query id -o tsv`.
    A Key Vault-backed secret scope reads the vault as this application. Null: no role for it (no secret scope).
  EOT
  type        = string
  default     = null
}

variable "key_vault_admins" {
  description = "Object ids of the people or pipelines that set the vault's secrets (Key Vault Secrets Officer)."
  type        = list(string)
  default     = []
}
