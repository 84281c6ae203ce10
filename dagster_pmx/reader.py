"""Read-only connections to the warehouse for analysts, notebooks and pmx's own reports.

``dagster_pmx.connect()`` returns a DuckDB connection with the lake attached read-only at the
latest run point: the state the last successful run left, whole. It never blocks a run and a
run never blocks it; it keeps seeing that state however long it stays open (call ``connect()``
again for a newer one). ``run=``, ``snapshot=`` or ``at=`` attach an earlier state instead (time
travel); docs/warehouse.md gives the same in plain SQL for any DuckDB 1.5 client.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from dagster_pmx import run_points
from dagster_pmx.lake import Lake, current_snapshot


def _configured_lake(warehouse: str | None) -> Lake:
    from dagster_pmx.config import load_config

    return load_config().lake if warehouse is None else Lake.at(warehouse)


def connect(
    warehouse: str | None = None,
    *,
    run: str | None = None,
    snapshot: int | None = None,
    at: str | pd.Timestamp | None = None,
    lake: Lake | None = None,
) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection to the warehouse, its tables reachable unqualified (``marts.signals``).

    Parameters
    ----------
    warehouse : str, optional
        The catalog file; default: the configured one (pmx.toml ``warehouse`` / ``PMX_WAREHOUSE``, or
        ``catalog`` / ``PMX_CATALOG`` for a team's PostgreSQL).
    run : str, optional
        A run id (or its first characters): the state that run left.
    snapshot : int, optional
        A DuckLake snapshot id (``ducklake_snapshots('pmx')``), run point or not.
    at : str or Timestamp, optional
        The state of the last run point recorded at or before this time.
    lake : Lake, optional
        The lake itself, instead of ``warehouse``.

    Returns
    -------
    duckdb.DuckDBPyConnection
        Attached at the chosen state; with no argument, the latest run point (the lake's latest
        snapshot before any run has recorded one).

    Raises
    ------
    FileNotFoundError
        No warehouse yet.
    LookupError
        No run point matches ``run`` or ``at`` (expired, or never recorded).
    """
    lake = lake or _configured_lake(warehouse)
    if snapshot is None:
        with lake.open(read_only=True) as head:
            snapshot = run_points.find(head, run=run, at=at)
            if snapshot is None:
                snapshot = current_snapshot(head)
    return lake.open(read_only=True, snapshot=snapshot)
