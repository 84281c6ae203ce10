"""The pmx Dagster code location, and :func:`connect`: a read-only connection to its warehouse."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster_pmx.reader import connect

__all__ = ["connect"]


def __getattr__(name: str):
    # imported when asked for: a dbt process loads this package for its DuckDB plugin
    # (defs/transform/duckdb_spill.py) and needs none of the reader's pandas
    if name == "connect":
        from dagster_pmx.reader import connect

        return connect
    raise AttributeError(f"module 'dagster_pmx' has no attribute {name!r}")
