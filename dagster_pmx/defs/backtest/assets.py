"""Backtest assets: daily returns of every strategy and the benchmark, and their summary. The per-period
breakdown, marts.backtest_periods, is a dbt model on marts.backtest_daily (dbt_project/models/marts)."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.backtest.engine import backtester, load_market, read_books
from dagster_pmx.defs.backtest.reads import daily_results, signal_models
from dagster_pmx.defs.portfolio.assets import CONTROLLED
from dagster_pmx.defs.reads import cash_rate_known
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.backtest.capacity import AUM_LEVELS, capacity_curve
from python_models.backtest.performance import summarize
from python_models.backtest.tearsheet import line_plot, markdown_image
from python_models.portfolio.allocation import BOND
from python_models.portfolio.sizing import CASH

BENCHMARK = "benchmark"
#: marts.backtest_summary.return_basis: the bundled S&P 500 is the price index, the stocks are dividend-adjusted.
PRICE_INDEX = "price index"
TOTAL_RETURN = "total return"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["marts", "backtest_daily"],
            group_name="backtest",
            kinds={"python", "duckdb"},
            metadata={"dagster/column_schema": schemas.BACKTEST_DAILY},
            deps=[
                dg.AssetKey(["marts", "allocations"]),
                dg.AssetKey(["marts", "signals"]),
                dg.AssetKey(["ml", "safe_sleeve"]),
                dg.AssetKey(["intermediate", "int_returns"]),
                dg.AssetKey(["intermediate", "int_risk_free"]),
                dg.AssetKey(["marts", "features"]),
            ],
            description="Daily gross return, costs, net return, equity, drawdown, turnover and exposure per strategy, "
            "from its first decision. Weights decided at the close of t are traded per PMX_EXECUTION (default: the "
            "close of t+1) and never earn the session they were decided on; costs are commission plus half-spread"
            " per unit traded, plus square-root impact where volumes exist (none for the bundled stocks). Cash "
            "earns the T-bill rate of intermediate.int_risk_free, or 0 where it is unknown, which cash_rate_known"
            " says on every row; BOND the bond proxy of ml.safe_sleeve. Strategy 'benchmark' is buy-and-hold of "
            "the S&P 500 price index (no dividends) over the same sessions.",
        ),
        dg.AssetSpec(
            ["marts", "backtest_attribution"],
            group_name="backtest",
            kinds={"python", "duckdb"},
            metadata={"dagster/column_schema": schemas.BACKTEST_ATTRIBUTION},
            deps=[dg.AssetKey(["marts", "allocations"]), dg.AssetKey(["marts", "signals"])],
            description="Where each strategy's gross return came from, per year: by sleeve, ticker and the model "
            "whose signal set the position (the model of the ticker's signal at the previous close).",
        ),
    ],
    pool="warehouse",
)
def backtest_daily(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings):
    books = read_books(warehouse)
    market = load_market(warehouse, min(b.index.min() for b in books.values()))
    if settings.benchmark not in market.returns.columns:
        raise ValueError(f"benchmark {settings.benchmark!r} has no returns in intermediate.int_returns")
    known = cash_rate_known(warehouse)
    books[BENCHMARK] = pd.DataFrame({settings.benchmark: 1.0}, index=market.returns.index[:1])
    models = signal_models(warehouse)
    frames, parts = [], []
    for strategy, weights in books.items():
        # a book is valued from its first decision, its equity from 1 there: one that starts later than the
        # others (the LLM source's) is not valued as cash before it
        daily, contrib = backtester(settings, market.since(weights.index.min()), contributions=True)(weights)
        daily["cash_rate_known"] = known.reindex(daily.index, fill_value=False).to_numpy(dtype=bool)
        frames.append(daily.rename_axis("date").reset_index().assign(strategy=strategy))
        parts.append(attribution(strategy, contrib, models))
    out = pd.concat(frames, ignore_index=True)[[c.name for c in schemas.BACKTEST_DAILY.columns]]
    rows = warehouse.replace_table("marts.backtest_daily", out)
    table = pd.concat(parts, ignore_index=True)[[c.name for c in schemas.BACKTEST_ATTRIBUTION.columns]]
    n = warehouse.replace_table("marts.backtest_attribution", table)
    final = out.groupby("strategy")["equity"].last().round(3).to_dict()
    shown = out[out["strategy"].isin([*CONTROLLED, BENCHMARK])].pivot(index="date", columns="strategy")
    plots = {
        name: dg.MetadataValue.md(
            markdown_image(name, line_plot({s: shown[name][s] for s in shown[name].columns}, title))
        )
        for name, title in (("equity", "Equity (net of costs)"), ("drawdown", "Drawdown"))
    }
    yield dg.MaterializeResult(
        asset_key=["marts", "backtest_daily"],
        metadata={
            "dagster/row_count": rows,
            "final_equity": str(final),
            "execution": settings.execution,
            "costs": f"{settings.cost_bps} bps commission + {settings.half_spread_bps} bps half-spread per unit traded",
            "impact": "charged"
            if market.impact_priced(market.returns.columns)
            else "not charged: no volume for some tickers",
            **plots,
        },
    )
    by_sleeve = table.groupby(["strategy", "sleeve"])["contribution"].sum().unstack().round(3)
    yield dg.MaterializeResult(
        asset_key=["marts", "backtest_attribution"],
        metadata={
            "dagster/row_count": n,
            "by_sleeve": dg.MetadataValue.md(by_sleeve.reset_index().to_markdown(index=False)),
        },
    )


def attribution(strategy: str, contributions: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Per-session contributions summed by year, sleeve, ticker and the model behind each position."""
    long = (
        contributions.rename_axis("date")
        .reset_index()
        .melt(id_vars="date", var_name="ticker", value_name="contribution")
    )
    long = long[long["contribution"] != 0]
    long["sleeve"] = long["ticker"].isin([CASH, BOND]).map({True: "safe", False: "risky"})
    if strategy in ("governed", "barbell"):
        held = long.sort_values("date")
        mapped = pd.merge_asof(
            held, models.sort_values("date"), on="date", by="ticker", allow_exact_matches=False, direction="backward"
        )
        long = mapped.set_index(held.index)
    elif strategy in ("risk_parity", BENCHMARK):
        long["model"] = None
    else:
        long["model"] = strategy
    long.loc[long["sleeve"] == "safe", "model"] = None
    long["year"] = pd.DatetimeIndex(long["date"]).year
    out = (
        long.groupby(["year", "sleeve", "ticker", "model"], dropna=False)
        .agg(contribution=("contribution", "sum"), sessions_held=("contribution", "size"))
        .reset_index()
    )
    return out.assign(strategy=strategy)


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
    daily = daily_results(warehouse, ["net_return", "excess_return", "turnover", "exposure", "cash_rate_known"])
    bench = daily[daily["strategy"] == BENCHMARK].set_index("date")["net_return"]
    rows = []
    for strategy, g in daily.groupby("strategy", sort=True):
        g = g.set_index("date")
        rows.append(
            {
                "strategy": strategy,
                **summarize(g["net_return"], bench, g["turnover"], g["exposure"], g["excess_return"]),
                "cash_rate_unknown_sessions": int((~g["cash_rate_known"].astype(bool)).sum()),
                "return_basis": PRICE_INDEX if strategy == BENCHMARK else TOTAL_RETURN,
            }
        )
    table = pd.DataFrame(rows)
    n = warehouse.replace_table("marts.backtest_summary", table)
    shown = table.set_index("strategy")[["sharpe", "cagr", "max_drawdown", "information_ratio"]].round(3)
    return dg.MaterializeResult(
        metadata={"dagster/row_count": n, "summary": dg.MetadataValue.md(shown.reset_index().to_markdown(index=False))}
    )


@dg.asset(
    key=["marts", "capacity"],
    group_name="backtest",
    metadata={"dagster/column_schema": schemas.CAPACITY},
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["marts", "allocations"]), dg.AssetKey(["ml", "safe_sleeve"])],
    description="Capacity of the traded strategies (barbell, governed, risk_parity): each backtested at books of "
    "$1M, $10M, $100M and $1B with square-root market impact on the participation in each session's dollar "
    "volume; Sharpe, CAGR, annual impact cost and the Sharpe ratio's decay against $1M. Impact needs volumes: "
    "where a traded ticker has none (every bundled stock) the rows say so and hold no numbers.",
)
def capacity(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings) -> dg.MaterializeResult:
    books = read_books(warehouse, list(CONTROLLED))
    market = load_market(warehouse, min(b.index.min() for b in books.values()))
    frames = []
    for strategy, book in books.items():
        traded = [t for t in book.columns[(book.abs() > 0).any()] if t != BOND]
        unpriced = [t for t in traded if not market.impact_priced([t])]
        if unpriced or settings.impact_coefficient <= 0:
            why = f"no volume for {', '.join(sorted(unpriced))}" if unpriced else "PMX_IMPACT_COEFFICIENT is 0"
            frames.append(pd.DataFrame({"aum": AUM_LEVELS, "priced": False, "note": why}).assign(strategy=strategy))
            continue
        curve = capacity_curve(lambda aum, b=book: backtester(settings.model_copy(update={"aum": aum}), market)(b))
        frames.append(curve.assign(strategy=strategy, priced=True, note=None))
    table = pd.concat(frames, ignore_index=True).reindex(columns=[c.name for c in schemas.CAPACITY.columns])
    n = warehouse.replace_table("marts.capacity", table)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": n,
            "priced": str(table.groupby("strategy")["priced"].all().to_dict()),
        }
    )
