"""One module per source system, found by convention (see ``base.load_sources``)."""
