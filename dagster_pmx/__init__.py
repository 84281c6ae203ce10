"""The pmx Dagster code location."""
