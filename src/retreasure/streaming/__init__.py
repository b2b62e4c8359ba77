"""The real-time path: web clickstream and online transactions over the Kafka protocol (a local broker, or Azure
Event Hubs' Kafka endpoint), landed in bronze in micro-batches, each message exactly once, the consumed offsets
committed with the rows."""
