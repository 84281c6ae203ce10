"""Backtest assets: daily returns of every strategy and the benchmark, and their summary."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.reads import cash_rates, market_regimes
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.backtest import run_backtest
from python_models.performance import period_statistics, stress_labels, summarize

BENCHMARK = "benchmark"


@dg.asset(
    key=["marts", "backtest_daily"],
    group_name="backtest",
    metadata={"dagster/column_schema": schemas.BACKTEST_DAILY},
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[
        dg.AssetKey(["marts", "allocations"]),
        dg.AssetKey(["intermediate", "int_returns"]),
        dg.AssetKey(["intermediate", "int_risk_free"]),
    ],
    description="Daily gross return, cost (bps per unit turnover), net return, equity, drawdown, "
    "turnover and exposure per strategy. Weights decided at the close of t earn the returns of t+1; the "
    "uninvested rest earns the T-bill rate of intermediate.int_risk_free (0 where it is unknown). "
    "Strategy 'benchmark' is buy-and-hold of the S&P 500 index over the same sessions.",
)
def backtest_daily(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings
) -> dg.MaterializeResult:
    alloc = warehouse.query("select strategy, date, ticker, weight from marts.allocations where sleeve = 'risky'")
    returns = warehouse.query("select ticker, date, simple_return from intermediate.int_returns")
    panel = returns.pivot(index="date", columns="ticker", values="simple_return").sort_index()
    start = alloc["date"].min()
    panel = panel.loc[panel.index >= start]
    if settings.benchmark not in panel.columns:
        raise ValueError(f"benchmark {settings.benchmark!r} has no returns in intermediate.int_returns")
    cash_rate = cash_rates(warehouse)
    frames = []
    books = {s: g.pivot(index="date", columns="ticker", values="weight") for s, g in alloc.groupby("strategy")}
    books[BENCHMARK] = pd.DataFrame({settings.benchmark: 1.0}, index=panel.index)
    for strategy, weights in books.items():
        daily = run_backtest(weights, panel, cost_bps=settings.cost_bps, cash_rate=cash_rate)
        frames.append(daily.rename_axis("date").reset_index().assign(strategy=strategy))
    out = pd.concat(frames, ignore_index=True)[
        [
            "strategy",
            "date",
            "gross_return",
            "cost",
            "net_return",
            "excess_return",
            "equity",
            "drawdown",
            "turnover",
            "exposure",
        ]
    ]
    rows = warehouse.replace_table("marts.backtest_daily", out)
    final = out.groupby("strategy")["equity"].last().round(3).to_dict()
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, "final_equity": str(final)})


@dg.asset(
    key=["marts", "backtest_summary"],
    group_name="backtest",
    metadata={"dagster/column_schema": schemas.BACKTEST_SUMMARY},
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["marts", "backtest_daily"])],
    description="Per strategy: Sharpe and Sortino (annualised, zero risk-free rate), max drawdown (<= 0) and "
    "its longest duration, information ratio vs the benchmark, hit rate, profit factor, CAGR, Calmar, "
    "volatility, annual turnover, mean exposure, start and end date.",
)
def backtest_summary(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    daily = warehouse.query(
        "select strategy, date, net_return, excess_return, turnover, exposure from marts.backtest_daily order by date"
    )
    bench = daily[daily["strategy"] == BENCHMARK].set_index("date")["net_return"]
    rows = []
    for strategy, g in daily.groupby("strategy", sort=True):
        g = g.set_index("date")
        rows.append(
            {
                "strategy": strategy,
                **summarize(g["net_return"], bench, g["turnover"], g["exposure"], g["excess_return"]),
            }
        )
    table = pd.DataFrame(rows)
    n = warehouse.replace_table("marts.backtest_summary", table)
    shown = table.set_index("strategy")[["sharpe", "cagr", "max_drawdown", "information_ratio"]].round(3)
    return dg.MaterializeResult(
        metadata={"dagster/row_count": n, "summary": dg.MetadataValue.md(shown.reset_index().to_markdown(index=False))}
    )


@dg.asset(
    key=["marts", "backtest_periods"],
    group_name="backtest",
    metadata={"dagster/column_schema": schemas.BACKTEST_PERIODS},
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["marts", "backtest_daily"]), dg.AssetKey(["ml", "regime_probabilities"])],
    description="Every strategy broken down by calendar year, by market regime (the HMM's most likely filtered "
    "regime of the session, 0 calmest) and by stress window (2000-02, 2008-09, 2020; a window outside the "
    "backtest has no row): sessions, compounded return, annualised volatility and Sharpe, max drawdown within.",
)
def backtest_periods(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    daily = warehouse.query("select strategy, date, net_return from marts.backtest_daily order by date")
    regime = market_regimes(warehouse)
    frames = []
    for strategy, g in daily.groupby("strategy", sort=True):
        r = pd.Series(g["net_return"].to_numpy(), index=pd.DatetimeIndex(g["date"]))
        labels = {
            "year": pd.Series(r.index.year, index=r.index),
            "regime": regime.reindex(r.index).map(lambda k: f"regime {int(k)}", na_action="ignore"),
            "stress": stress_labels(r.index),
        }
        for kind, lab in labels.items():
            frames.append(period_statistics(r, lab).assign(strategy=strategy, breakdown=kind))
    table = pd.concat(frames, ignore_index=True)[[c.name for c in schemas.BACKTEST_PERIODS.columns]]
    n = warehouse.replace_table("marts.backtest_periods", table)
    stress = table[table["breakdown"] == "stress"].pivot(index="strategy", columns="period", values="total_return")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": n,
            "stress_returns": dg.MetadataValue.md(stress.round(3).reset_index().to_markdown(index=False)),
        }
    )
