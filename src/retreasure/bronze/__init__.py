"""Bronze: every record as received, PII tokenised, landed idempotently."""
