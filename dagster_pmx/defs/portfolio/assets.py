"""Allocation: fractional Kelly weights per strategy (the ensemble and each single model)."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.sizing import kelly_weights

CASH = "CASH"


def strategy_weights(signals: pd.DataFrame, settings: PmxSettings) -> pd.DataFrame:
    """Long allocations (strategy, date, ticker, weight, sleeve) from per-strategy signals.

    ``signals`` has ``strategy, ticker, date, expected_return, forecast_std``. Each date's
    uninvested remainder is a ``CASH`` row in the safe sleeve, so weights sum to one.
    """
    frames = []
    for strategy, g in signals.groupby("strategy", sort=True):
        mu = g.pivot(index="date", columns="ticker", values="expected_return")
        sd = g.pivot(index="date", columns="ticker", values="forecast_std")
        w = kelly_weights(
            mu, sd, fraction=settings.kelly_fraction, cap=settings.position_cap, max_gross=settings.max_gross
        )
        long = w.rename_axis(index="date", columns="ticker").stack().rename("weight").reset_index()
        cash = (1.0 - w.sum(axis=1)).rename("weight").rename_axis("date").reset_index().assign(ticker=CASH)
        frames.append(pd.concat([long.assign(sleeve="risky"), cash.assign(sleeve="safe")]).assign(strategy=strategy))
    out = pd.concat(frames, ignore_index=True)[["strategy", "date", "ticker", "weight", "sleeve"]]
    return out.sort_values(["strategy", "date", "ticker"]).reset_index(drop=True)


@dg.asset(
    key=["marts", "allocations"],
    group_name="portfolio",
    metadata={"dagster/column_schema": schemas.ALLOCATIONS},
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["marts", "signals"]), dg.AssetKey(["marts", "forecasts"])],
    description="Target weights decided at each date's close: fractional Kelly (fraction x mu / sigma^2) "
    "from the forecast mean and standard deviation at the signal horizon, long-only, capped at "
    "10 % per position and 100 % gross, the rest in CASH (safe sleeve). Strategy 'ensemble' uses "
    "marts.signals; each single model's strategy uses its own forecasts at the same horizon.",
)
def allocations(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings) -> dg.MaterializeResult:
    signals = warehouse.query("""
        select 'ensemble' as strategy, ticker, date, expected_return, forecast_std from marts.signals
        union all
        select f.model as strategy, f.ticker, f.asof_date as date, f.y_pred, f.y_std
        from marts.forecasts f
        where f.model <> 'ensemble' and f.horizon = (select max(horizon) from marts.signals)
    """)
    if signals.empty:
        raise ValueError("marts.signals is empty: nothing to allocate")
    frame = strategy_weights(signals, settings)
    rows = warehouse.replace_table("marts.allocations", frame)
    risky = frame[frame["sleeve"] == "risky"]
    gross = risky.groupby(["strategy", "date"])["weight"].sum().groupby("strategy").mean().round(3)
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, "mean_gross_exposure": str(gross.to_dict())})
