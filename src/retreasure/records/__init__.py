"""What every layer says about a record: where its PII sits, how a path finds a value in it, what an instant
is, and when it is too big. Declarations only, below the connectors that declare them and the bronze that acts
on them."""
