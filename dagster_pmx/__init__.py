"""The pmx Dagster code location, and :func:`connect`: a read-only connection to its warehouse."""

from dagster_pmx.reader import connect

__all__ = ["connect"]
