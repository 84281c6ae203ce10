"""Allocation: fractional Kelly weights per strategy (the ensemble and each single model)."""

import dagster as dg

from dagster_pmx.defs import schemas
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.sizing import kelly_book


@dg.asset(
    key=["marts", "allocations"],
    group_name="portfolio",
    metadata={"dagster/column_schema": schemas.ALLOCATIONS},
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["marts", "signals"]), dg.AssetKey(["marts", "forecasts"])],
    description="Target weights decided at each date's close: fractional Kelly (fraction x mu / sigma^2) "
    "from the forecast mean and standard deviation at the signal horizon, long-only, capped at "
    "10 % per position and 100 % gross, the rest in CASH (safe sleeve). Strategy 'governed' trades "
    "marts.signals (the model governance made active), and only the rows with tradable = true; every "
    "model in marts.forecasts (single models and ensembles) also gets its own ungoverned strategy.",
)
def allocations(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings) -> dg.MaterializeResult:
    signals = warehouse.query("""
        select 'governed' as strategy, ticker, date,
               case when tradable then expected_return else 0 end as expected_return, forecast_std
        from marts.signals
        union all
        select f.model as strategy, f.ticker, f.asof_date as date, f.y_pred, f.y_std
        from marts.forecasts f
        where f.horizon = (select max(horizon) from marts.signals)
    """)
    if signals.empty:
        raise ValueError("marts.signals is empty: nothing to allocate")
    frame = kelly_book(signals, settings.kelly_fraction, settings.position_cap, settings.max_gross)
    rows = warehouse.replace_table("marts.allocations", frame)
    risky = frame[frame["sleeve"] == "risky"]
    gross = risky.groupby(["strategy", "date"])["weight"].sum().groupby("strategy").mean().round(3)
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, "mean_gross_exposure": str(gross.to_dict())})
