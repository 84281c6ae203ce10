"""ingest domain of the pmx asset graph."""
