"""VaR and ES of every strategy's daily net returns (marts.risk_var) and the tests of the one-session
VaR's exceedances (marts.var_backtests). Research assets, rebuilt with the backtests (the full build and
the weekly retrain). The strategies are estimated in parallel on the walk-forward's Dask cluster."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.backtest.reads import daily_results
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.evaluation.cluster import fan_out
from python_models.risk.backtests import exceedance_table, exceedances
from python_models.risk.var import rolling_var_es

#: Sessions of net returns behind each estimate (a trading year, as Basel's historical VaR).
WINDOW = 252


def strategy_risk(task: tuple[str, pd.Series]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One strategy's rows of marts.risk_var and marts.var_backtests (a Dask task: module level)."""
    strategy, returns = task
    if len(returns) < WINDOW:
        return pd.DataFrame(), pd.DataFrame()
    estimates = rolling_var_es(returns, window=WINDOW)
    marked = exceedances(returns, estimates)[["date", "method", "level", "next_return", "exceeded"]]
    daily = estimates.merge(marked.assign(horizon=1), on=["date", "method", "level", "horizon"], how="left")
    return daily.assign(strategy=strategy), exceedance_table(returns, estimates).assign(strategy=strategy)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["marts", "risk_var"],
            group_name="risk",
            kinds={"python", "duckdb"},
            metadata={"dagster/column_schema": schemas.RISK_VAR},
            deps=[dg.AssetKey(["marts", "backtest_daily"])],
            description="VaR and ES of each strategy's net returns at every close with a year of returns behind it: "
            "historical, Cornish-Fisher (ES: the mean of its quantile function over the tail) and filtered "
            "historical simulation on a GARCH(1,1) "
            "refitted every 63 sessions; 1 and 10 sessions; 95 % and 99 %; losses as positive fractions of the book. "
            "The one-session rows carry the next session's return and whether it exceeded the VaR.",
        ),
        dg.AssetSpec(
            ["marts", "var_backtests"],
            group_name="risk",
            kinds={"python", "duckdb"},
            metadata={"dagster/column_schema": schemas.VAR_BACKTESTS},
            deps=[dg.AssetKey(["marts", "backtest_daily"])],
            description="The one-session VaR's exceedances per strategy, method and level: the rate against "
            "1 - level, Kupiec's proportion-of-failures test and Christoffersen's independence and conditional "
            "coverage tests.",
        ),
    ],
    pool="warehouse",
)
def risk_var(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings):
    daily = daily_results(warehouse, ["net_return"])
    tasks = [
        (strategy, group.set_index("date")["net_return"].dropna().astype(float))
        for strategy, group in daily.groupby("strategy", sort=True)
    ]
    results = fan_out(
        strategy_risk,
        tasks,
        [f"risk_var-{strategy}" for strategy, _ in tasks],
        workers=settings.workers,
        scheduler=settings.scheduler or None,
    )
    estimates = pd.concat([r[0] for r in results if len(r[0])], ignore_index=True)
    tests = pd.concat([r[1] for r in results if len(r[1])], ignore_index=True)
    rows = warehouse.replace_table("marts.risk_var", estimates[[c.name for c in schemas.RISK_VAR.columns]])
    yield dg.MaterializeResult(
        asset_key=["marts", "risk_var"], metadata={"dagster/row_count": rows, "strategies": len(tasks)}
    )
    table = tests[[c.name for c in schemas.VAR_BACKTESTS.columns]]
    n = warehouse.replace_table("marts.var_backtests", table)
    shown = table[table["level"] == 0.99].pivot(index="strategy", columns="method", values="observed_rate").round(4)
    yield dg.MaterializeResult(
        asset_key=["marts", "var_backtests"],
        metadata={
            "dagster/row_count": n,
            "exceedance_rate_99": dg.MetadataValue.md(shown.reset_index().to_markdown(index=False)),
        },
    )
