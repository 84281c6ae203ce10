"""Ingest assets: raw prices and macro series, upserted idempotently into schema ``raw``."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.ingest.sources import MACRO_COLUMNS, PRICE_COLUMNS, make_source
from dagster_pmx.resources import PmxSettings, Warehouse

PRICES_DDL = """
create table if not exists raw.prices (
    ticker varchar not null, date date not null, open double, high double, low double,
    close double, adj_close double, volume double, source varchar not null, ingested_at timestamp,
    primary key (ticker, date, source)
)"""
MACRO_DDL = """
create table if not exists raw.macro (
    series_id varchar not null, date date not null, value double, unit varchar, source varchar not null,
    ingested_at timestamp, primary key (series_id, date, source)
)"""


def upsert(warehouse: Warehouse, table: str, ddl: str, frame: pd.DataFrame, columns: list[str], key: list[str]) -> int:
    """Insert new rows and replace changed ones, keyed by ``key``; returns the table's row count.

    Only rows that are new or whose values differ from the stored ones are written, stamped
    with ``ingested_at``: re-sending the same rows changes nothing (the incremental dbt
    models read ``ingested_at`` to find what changed). Rows already stored and absent from
    ``frame`` are kept.
    """
    values = [c for c in columns if c not in key]
    on = " and ".join(f"stored.{c} = incoming.{c}" for c in key)
    incoming, stored = (", ".join(f"{side}.{c}" for c in values) for side in ("incoming", "stored"))
    changed = f"row({incoming}) is distinct from row({stored})"
    with warehouse.connect() as con:
        con.execute("create schema if not exists raw")
        con.execute(ddl)
        # warehouses created before ingested_at existed: their rows count as ingested long ago
        con.execute(f"alter table {table} add column if not exists ingested_at timestamp")
        con.register("incoming", frame[columns])
        con.execute(
            f"insert or replace into {table} ({', '.join(columns)}, ingested_at) "
            f"select {', '.join('incoming.' + c for c in columns)}, now()::timestamp from incoming "
            f"left join {table} as stored on {on} "
            f"where stored.{key[0]} is null or {changed}"
        )
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
    total = upsert(warehouse, "raw.prices", PRICES_DDL, frame, PRICE_COLUMNS, ["ticker", "date", "source"])
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
    total = upsert(warehouse, "raw.macro", MACRO_DDL, frame, MACRO_COLUMNS, ["series_id", "date", "source"])
    return dg.MaterializeResult(
        metadata={"rows_received": len(frame), "dagster/row_count": total, "series": frame["series_id"].nunique()}
    )
