"""VaR and ES of every strategy's daily net returns (marts.risk_var) and the tests of the one-session
VaR's exceedances (marts.var_backtests); the scenario stress of every strategy's books (marts.stress_tests)
and a Monte Carlo of its current book (marts.stress_monte_carlo). Research assets, rebuilt with the
backtests (the full build and the weekly retrain). The VaR of the strategies is estimated in parallel on
the walk-forward's Dask cluster; the stress, vectorised over a strategy's decisions, in this process."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.backtest.engine import load_market, read_books
from dagster_pmx.defs.backtest.reads import daily_results
from dagster_pmx.defs.risk.reads import allocation_strategies
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.evaluation.cluster import fan_out
from python_models.portfolio.allocation import BOND
from python_models.risk.backtests import exceedance_table, exceedances
from python_models.risk.stress import STRESS_COLUMNS, block_bootstrap, stress_books
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


#: The Monte Carlo's seed (it runs on each strategy's latest decision): a rebuild gives the same numbers.
MONTE_CARLO_SEED = 0


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["marts", "stress_tests"],
            group_name="risk",
            kinds={"python", "duckdb"},
            metadata={"dagster/column_schema": schemas.STRESS_TESTS},
            deps=[dg.AssetKey(["marts", "allocations"])],
            description="Hypothetical shocks applied to the positions every strategy decided at each close, valued "
            "with what was known then: the benchmark down 20 % with each asset's window beta, the volatility "
            "doubled (the one-session 97.5 % ES), the bond yield up and down 200 bp, and the replayed episodes of "
            "19 October 1987, 15 October 2008 and Lehman's 20 sessions (only once they happened). Losses as "
            "positive fractions of the book.",
        ),
        dg.AssetSpec(
            ["marts", "stress_monte_carlo"],
            group_name="risk",
            kinds={"python", "duckdb"},
            metadata={"dagster/column_schema": schemas.STRESS_MONTE_CARLO},
            deps=[dg.AssetKey(["marts", "allocations"])],
            description="A block-bootstrap Monte Carlo of each strategy's current book held for the next 21 and "
            "252 sessions (blocks of 10 sessions of every asset's returns at once, 5,000 seeded paths): the "
            "distribution of its return, its 99 % VaR and ES, and the probability of a 15 % drawdown.",
        ),
    ],
    pool="warehouse",
)
def stress(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings):
    returns = load_market(warehouse, pd.Timestamp("1900-01-01")).returns  # the whole history: the replays
    shocks, simulations = [], []
    for strategy in allocation_strategies(warehouse):  # a strategy's books at a time
        books = read_books(warehouse, [strategy])[strategy].sort_index()
        shocks.append(
            stress_books(books, returns, settings.benchmark, BOND, settings.bond_duration).assign(strategy=strategy)
        )
        latest = books.index.max()
        history = returns.loc[returns.index <= latest]
        try:
            simulated = block_bootstrap(books.loc[latest], history, seed=MONTE_CARLO_SEED)
        except ValueError as exc:  # e.g. a book holding a stock listed a few sessions ago: too little history
            context.log.warning(f"{strategy}: no Monte Carlo of its latest book ({exc})")
            continue
        simulations.append(simulated.assign(strategy=strategy, date=latest))
    table = pd.concat(shocks, ignore_index=True)[["strategy", *STRESS_COLUMNS]]
    n = warehouse.replace_table("marts.stress_tests", table[[c.name for c in schemas.STRESS_TESTS.columns]])
    now = table[table["date"] == table.groupby("strategy")["date"].transform("max")]
    worst = now.pivot_table(index="strategy", columns="scenario", values="loss", aggfunc="first").round(4)
    yield dg.MaterializeResult(
        asset_key=["marts", "stress_tests"],
        metadata={
            "dagster/row_count": n,
            "current_books": dg.MetadataValue.md(worst.reset_index().to_markdown(index=False)),
        },
    )
    columns = [c.name for c in schemas.STRESS_MONTE_CARLO.columns]
    mc = pd.concat(simulations, ignore_index=True)[columns] if simulations else pd.DataFrame(columns=columns)
    m = warehouse.replace_table("marts.stress_monte_carlo", mc)
    shown = mc.pivot(index="strategy", columns="horizon", values="prob_drawdown_15").astype(float).round(3)
    yield dg.MaterializeResult(
        asset_key=["marts", "stress_monte_carlo"],
        metadata={
            "dagster/row_count": m,
            "prob_drawdown_15": dg.MetadataValue.md(shown.reset_index().to_markdown(index=False)),
        },
    )
