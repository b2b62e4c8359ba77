"""Data quality: row rules that quarantine, table checks that block, results a person can query."""
