"""Rows staged as Parquet files, to replace warehouse tables from at once.

A step that would hold a whole universe's results in pandas writes them a batch at a time with
:func:`stage` and replaces its tables from the files in one transaction
(:meth:`~dagster_pmx.resources.Warehouse.replace_tables_from_files`). This module needs neither Dagster
nor the lake, only DuckDB: a Dask worker that made a batch's rows stages them itself (the walk-forward's
pooled models on a local cluster, :mod:`dagster_pmx.defs.forecasting.checkpoints`), so they never travel
to the run's process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa


@dataclass
class StagedTables:
    """Tables' rows staged as Parquet files (:func:`stage`), to replace the tables at once
    (:meth:`~dagster_pmx.resources.Warehouse.replace_tables_from_files`)."""

    files: dict[str, list[str]] = field(default_factory=dict)
    #: each table's columns, which it keeps where no batch has rows
    empty: dict[str, pd.DataFrame] = field(default_factory=dict)

    def add(self, paths: Mapping[str, str | None], empty: Mapping[str, pd.DataFrame]) -> None:
        """One batch's files (None for a table it has no rows of) and its tables' empty frames."""
        for table, path in paths.items():
            self.empty.setdefault(table, empty[table])
            self.files.setdefault(table, [])
            if path is not None:
                self.files[table].append(path)


def stage(
    frames: Mapping[str, pd.DataFrame],
    folder: Path,
    stem: str,
    columns: Mapping[str, str] | None = None,
) -> tuple[dict[str, str | None], dict[str, pd.DataFrame]]:
    """Each of ``frames`` (``schema.table -> rows``) written to ``folder/{stem}-{j}.parquet`` with the column
    types the lake gives it; the paths by table (None for an empty frame) and the tables' empty heads.

    ``columns`` gives, for some tables, the SQL select list written instead of the frame's own columns (the
    frame is the relation ``batch``): columns computed by DuckDB as it writes, such as the forecasts'
    ``fit_id``, which pandas would build as millions of Python strings (gigabytes at 500 tickers). The
    empty head of such a table is that select's, without rows.

    An in-memory DuckDB writes the files (a frame becomes the same column types in any DuckDB connection):
    the caller may be reading the lake meanwhile, which is attached only to replace the tables."""
    paths: dict[str, str | None] = {}
    empty: dict[str, pd.DataFrame] = {}
    with duckdb.connect() as scratch:
        for j, (table, frame) in enumerate(frames.items()):
            select = f"select {columns[table]} from batch" if columns and table in columns else None
            scratch.register("batch", _scanned(stored(frame)))
            empty[table] = _head(scratch, select) if select else frame.head(0)
            paths[table] = None
            if not frame.empty:
                path = str(folder / f"{stem}-{j:03d}.parquet")
                scratch.execute(f"copy ({select or 'select * from batch'}) to {quoted(path)} (format parquet)")
                paths[table] = path
            scratch.unregister("batch")
    return paths, empty


def _scanned(frame: pd.DataFrame) -> pa.Table | pd.DataFrame:
    """``frame`` as DuckDB writes it with the least memory: as an Arrow table (its columns shared, not
    copied), where Arrow gives every column a type. Keeping the 7.3 M forecast rows of a pooled model at 500
    tickers, DuckDB's scan of the pandas frame (pandas 3's Arrow-backed strings) rose 1,621 MiB and took
    7.4 s, the Arrow table's 709 MiB and 3.4 s (``benchmarks/batch_keep_memory.py``, "kept where made" and
    "pandas scanned"). A column Arrow cannot type (mixed objects, or only nulls, which DuckDB's own scan
    types from pandas) leaves the frame as it is."""
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, TypeError, ValueError):
        return frame
    return frame if any(pa.types.is_null(f.type) for f in table.schema) else table


def _head(scratch: duckdb.DuckDBPyConnection, select: str) -> pd.DataFrame:
    """The columns of ``select``, without rows, in pandas types DuckDB reads back as the same column types
    (through Arrow: DuckDB's own ``df()`` gives a VARCHAR column without rows as ``object``, read back as INTEGER)."""
    result = scratch.execute(f"{select} limit 0").arrow()
    return (result.read_all() if hasattr(result, "read_all") else result).to_pandas()


def quoted(path: str) -> str:
    """``path`` as an SQL string literal."""
    return "'" + path.replace("'", "''") + "'"


def stored(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as the lake stores it: a DuckLake has no ENUM type, so pandas categoricals become their values."""
    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    return frame.astype({c: frame[c].cat.categories.dtype for c in categorical}) if categorical else frame
