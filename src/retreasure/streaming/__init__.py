"""Real-time landing: web clickstream and online transactions consumed from Kafka (or Event Hubs' Kafka endpoint)
into bronze in micro-batches, each message exactly once, the consumed offsets committed with the rows."""
