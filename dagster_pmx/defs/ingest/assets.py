"""Ingest assets: raw prices and macro series, upserted idempotently into schema ``raw``."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.ingest.sources import MACRO_COLUMNS, PRICE_COLUMNS, make_source
from dagster_pmx.resources import PmxSettings, Warehouse

PRICES_DDL = """
create table if not exists raw.prices (
    ticker varchar not null, date date not null, open double, high double, low double,
    close double, adj_close double, volume double, source varchar not null,
    primary key (ticker, date, source)
)"""
MACRO_DDL = """
create table if not exists raw.macro (
    series_id varchar not null, date date not null, value double, unit varchar, source varchar not null,
    primary key (series_id, date, source)
)"""


def upsert(warehouse: Warehouse, table: str, ddl: str, frame: pd.DataFrame, columns: list[str]) -> int:
    """Insert or replace rows keyed by the table's primary key; returns the table's row count.

    Rows already stored and absent from ``frame`` are kept, and re-sending the same rows
    leaves the table unchanged.
    """
    with warehouse.connect() as con:
        con.execute("create schema if not exists raw")
        con.execute(ddl)
        con.register("incoming", frame[columns])
        con.execute(f"insert or replace into {table} ({', '.join(columns)}) select {', '.join(columns)} from incoming")
        return int(con.execute(f"select count(*) from {table}").fetchone()[0])


def select_prices(frame: pd.DataFrame, settings: PmxSettings) -> pd.DataFrame:
    """Restrict a price frame to the configured universe (plus the benchmark) and dates."""
    out = frame.copy()
    out["date"] = pd.to_datetime(out["date"]).dt.normalize()
    tickers = settings.ticker_list
    if tickers:
        out = out[out["ticker"].isin(set(tickers) | {settings.benchmark})]
    out = out[out["date"] >= pd.Timestamp(settings.start_date)]
    if settings.end_date:
        out = out[out["date"] <= pd.Timestamp(settings.end_date)]
    return out.sort_values(["ticker", "date", "source"]).reset_index(drop=True)


@dg.asset(
    key=["raw", "prices"],
    group_name="ingest",
    metadata={"dagster/column_schema": schemas.RAW_PRICES},
    pool="warehouse",
    kinds={"duckdb", "python"},
    description="Daily prices per (ticker, date, source) from the configured source (default: real "
    "data bundled in skfolio and arch). Idempotent upsert keyed by (ticker, date, source).",
)
def raw_prices(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings) -> dg.MaterializeResult:
    source = make_source(settings.source, settings.csv_dir)
    universe = settings.ticker_list + [settings.benchmark] if settings.ticker_list else None
    frame = select_prices(source.prices(universe), settings)
    if frame.empty:
        raise ValueError(f"source {source.name!r} returned no prices for the configured universe and dates")
    total = upsert(warehouse, "raw.prices", PRICES_DDL, frame, PRICE_COLUMNS)
    context.log.info(f"upserted {len(frame)} price rows from {source.name}; raw.prices holds {total}")
    return dg.MaterializeResult(
        metadata={
            "rows_received": len(frame),
            "dagster/row_count": total,
            "tickers": frame["ticker"].nunique(),
            "first_date": str(frame["date"].min().date()),
            "last_date": str(frame["date"].max().date()),
        }
    )


@dg.asset(
    key=["raw", "macro"],
    group_name="ingest",
    metadata={"dagster/column_schema": schemas.RAW_MACRO},
    pool="warehouse",
    kinds={"duckdb", "python"},
    description="Monthly macro series (Fama–French factors and risk-free rate, Moody's AAA/BAA yields, "
    "core CPI) in their published units. Idempotent upsert keyed by (series_id, date, source).",
)
def raw_macro(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings) -> dg.MaterializeResult:
    frame = make_source(settings.source, settings.csv_dir).macro()
    if settings.end_date:
        frame = frame[pd.to_datetime(frame["date"]) <= pd.Timestamp(settings.end_date)]
    if frame.empty:
        context.log.warning("the source provides no macro series; raw.macro left as it was")
        with warehouse.connect() as con:
            con.execute("create schema if not exists raw")
            con.execute(MACRO_DDL)
        return dg.MaterializeResult(metadata={"rows_received": 0})
    total = upsert(warehouse, "raw.macro", MACRO_DDL, frame, MACRO_COLUMNS)
    return dg.MaterializeResult(
        metadata={"rows_received": len(frame), "dagster/row_count": total, "series": frame["series_id"].nunique()}
    )
