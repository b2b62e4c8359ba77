# The web shop's events: an Event Hubs namespace, spoken to through its Kafka endpoint (port 9093).
resource "azurerm_eventhub_namespace" "stream" {
  name                = "${local.stem}-${local.suffix}"
  resource_group_name = azurerm_resource_group.platform.name
  location            = azurerm_resource_group.platform.location
  # Standard or above: Basic has no Kafka endpoint; on Standard the Kafka endpoint is always on.
  sku                      = "Standard"
  capacity                 = var.eventhubs_capacity
  auto_inflate_enabled     = true # rides out a campaign's peak
  maximum_throughput_units = var.eventhubs_max_capacity
  minimum_tls_version      = "1.2"
  # The platform logs in over Kafka with SASL PLAIN, `$ConnectionString` and a policy's connection string.
  local_authentication_enabled = true
  tags                         = local.tags
}

resource "azurerm_eventhub" "topic" {
  for_each          = var.eventhubs
  name              = each.key
  namespace_id      = azurerm_eventhub_namespace.stream.id
  partition_count   = each.value # fixed at creation on Standard
  message_retention = var.eventhubs_retention_days
}

resource "azurerm_eventhub_consumer_group" "stream" {
  for_each            = azurerm_eventhub.topic
  name                = local.stream_consumer_group
  namespace_name      = azurerm_eventhub_namespace.stream.name
  eventhub_name       = each.value.name
  resource_group_name = azurerm_resource_group.platform.name
}

# One policy per side, so that neither key can do the other's work: the platform listens, the web shop sends.
resource "azurerm_eventhub_namespace_authorization_rule" "platform_listen" {
  name                = "retreasure-listen"
  namespace_name      = azurerm_eventhub_namespace.stream.name
  resource_group_name = azurerm_resource_group.platform.name
  listen              = true
  send                = false
  manage              = false
}

resource "azurerm_eventhub_namespace_authorization_rule" "site_send" {
  name                = "site-send"
  namespace_name      = azurerm_eventhub_namespace.stream.name
  resource_group_name = azurerm_resource_group.platform.name
  listen              = false
  send                = true
  manage              = false
}
