"""Benchmarks: each measures against a baseline taken in the same run and writes its marked table into
docs/benchmarks.md."""


def landing_pass() -> str:
    """Which landing pass a run measured: a venv set up without cargo (or switched off) lands in Python, 2-3x the
    CPU, and its figures must say so."""
    from retreasure.bronze import native

    if native.available():
        return "the native landing pass"
    return "the Python landing path (native pass not built or switched off)"
