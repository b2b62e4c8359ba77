"""What tables promise their readers: a model's contract (the YAML beside its SQL) and, for each bronze table a
model reads, which version of a record is its newest. Declarations only: the engine builds by them, the checks
judge by them, neither imports the other for them."""
