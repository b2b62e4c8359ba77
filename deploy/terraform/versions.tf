# The seed's Azure resources: the lake's storage, Event Hubs, Key Vault, the platform's identity and its roles,
# and the Databricks workspace with its access connector. Walk-through: docs/azure.md.
terraform {
  required_version = ">= 1.6"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 5.2"
    }
  }
}

# The subscription comes from ARM_SUBSCRIPTION_ID (or `az account set`), never from this folder.
provider "azurerm" {
  features {
    key_vault {
      # A destroyed vault stays recoverable (soft delete with purge protection): the PII keys decide whether the
      # lake's tokens and its restricted PII can ever be read again.
      purge_soft_delete_on_destroy = false
    }
  }
  # The deploying identity reaches storage through Azure AD (role assignments), not through the account key.
  storage_use_azuread = true
}
