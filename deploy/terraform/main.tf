data "azurerm_client_config" "current" {}

locals {
  stem = "${var.name}-${var.environment}"
  # Storage accounts, vaults and namespaces are named across all of Azure: a suffix stable per subscription and
  # deployment keeps two subscriptions' `retreasure-prod` apart without a random provider.
  suffix = substr(sha1("${data.azurerm_client_config.current.subscription_id}/${local.stem}"), 0, 6)
  tags   = merge({ project = "retreasure", environment = var.environment }, var.tags)
  # One consumer group per lake: two lakes in one group would each get part of the stream (docs/streaming.md).
  stream_consumer_group = "retreasure-stream-${var.environment}"
}

resource "azurerm_resource_group" "platform" {
  name     = "rg-${local.stem}"
  location = var.location
  tags     = local.tags
}
