"""Building the whole graph into a temporary warehouse, and reading it back."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from dagster_pmx.definitions import build_definitions
from dagster_pmx.defs.transform.project import dbt_env
from dagster_pmx.lake import Lake, current_snapshot
from dagster_pmx.resources import PmxSettings, Warehouse

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
TICKERS = "AAPL,JPM,XOM"
CUT = "2011-06-30"
SLICE = dict(
    tickers=TICKERS,
    start_date="2006-01-01",
    end_date="2012-12-31",
    forecast_start="2009-06-01",
    train_window=500,
    refit_every=63,
    ensemble_window=126,
    workers=1,
)
#: The slice the ``pmx`` command builds in the tests that start it as a user would (environment variables).
CLI_SLICE = {
    "PMX_TICKERS": "JPM,XOM",
    "PMX_START_DATE": "2008-01-01",
    "PMX_END_DATE": "2011-12-31",
    "PMX_FORECAST_START": "2010-06-01",
    "PMX_TRAIN_WINDOW": "400",
    "PMX_WORKERS": "1",
}


def build(path, **overrides) -> dg.ExecuteInProcessResult:
    settings = PmxSettings(**{**SLICE, **overrides})
    defs = build_definitions({"warehouse": Warehouse(path=str(path)), "settings": settings})
    job = defs.resolve_job_def("full_build")
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


# When a row was loaded or written: differs between builds of the same data by design.
STAMPS = ("refreshed_at", "ingested_at")


#: Read-only connections to the session's warehouses, which no test writes (see :func:`held_open`).
_HELD: dict[Path, duckdb.DuckDBPyConnection] = {}


def read(path, sql, params=None) -> pd.DataFrame:
    held = _HELD.get(Path(path).resolve())
    if held is not None:
        return held.execute(sql, params or []).df()
    with Lake.at(path).open(read_only=True) as con:
        return con.execute(sql, params or []).df()


@contextmanager
def held_open(path) -> Iterator[Path]:
    """``path`` with one read-only connection held open for :func:`read`: a warehouse the tests only read
    (the session's builds; a test that writes works on a copy) is attached once, not once a query (~0.3 s
    each, hundreds of queries). On exit, fails if the warehouse changed meanwhile (a test wrote to it)."""
    key = Path(path).resolve()
    con = Lake.at(path).open(read_only=True)
    snapshot = current_snapshot(con)
    _HELD[key] = con
    try:
        yield path
    finally:
        del _HELD[key]
        con.close()
        with Lake.at(path).open(read_only=True) as fresh:
            assert current_snapshot(fresh) == snapshot, f"a test wrote to the shared warehouse {path}"


def build_features(path, settings: PmxSettings) -> dg.ExecuteInProcessResult:
    """Materialize only ingest and the dbt feature and target models (no forecasting)."""
    defs = build_definitions({"warehouse": Warehouse(path=str(path)), "settings": settings})
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.materializable_asset_keys if graph.get(k).group_name in ("ingest", "transform")]
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=keys, raise_on_error=False
    )


def without_stamps(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in STAMPS if c in frame.columns])


def dbt_run(path, tmp_path, *flags: str, part: str = "--exclude") -> None:
    """``dbt run`` of the feature models (``part="--select"``: the post-forecast ones) with ``flags``."""
    dbt(path, tmp_path, "run", "--quiet", part, "tag:post_forecast", *flags, check=True)


def dbt(path, tmp_path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    """The dbt command ``args`` on the warehouse at ``path`` (its artifacts under ``tmp_path``)."""
    env = {**os.environ, **dbt_env(Lake.at(path))}
    command = [str(Path(sys.executable).with_name("dbt")), *args]
    command += [
        "--project-dir",
        str(DBT_DIR),
        "--profiles-dir",
        str(DBT_DIR),
        "--target-path",
        str(tmp_path / "target"),
    ]
    return subprocess.run(command, env=env, cwd=DBT_DIR, check=check, capture_output=not check, text=True)
