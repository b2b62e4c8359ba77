"""The real-time path: web clickstream and online transactions over the Kafka protocol (a local broker, or Azure
Event Hubs' Kafka endpoint)."""
