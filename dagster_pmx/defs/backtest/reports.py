"""Reports: the HTML tearsheet, with its plots as asset metadata."""

from pathlib import Path

import dagster as dg
import pandas as pd

from dagster_pmx.defs.backtest.assets import BENCHMARK
from dagster_pmx.defs.backtest.reads import allocation_rows, llm_scores, tearsheet_inputs
from dagster_pmx.defs.risk.reads import current_stress, drawn_var, var_backtests
from dagster_pmx.resources import Warehouse
from python_models.backtest.tearsheet import data_uri, figures, page, var_plot
from python_models.llm.scores import comparison_table
from python_models.portfolio.allocation import BOND
from python_models.portfolio.sizing import CASH

#: Strategies the tearsheet draws (the traded ones); the summary table lists every strategy.
TEARSHEET_STRATEGIES = ("barbell", "governed", "risk_parity")


def sleeve_weights(alloc: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """Monthly mean of decided weights: the ``top`` largest risky tickers, other equities, BOND, CASH."""
    alloc = alloc.assign(date=pd.to_datetime(alloc["date"]))
    wide = alloc.pivot_table(index="date", columns="ticker", values="weight", aggfunc="sum").fillna(0.0)
    safe = [c for c in (BOND, CASH) if c in wide.columns]
    risky = wide.drop(columns=safe)
    leaders = list(risky.mean().nlargest(top).index)
    grouped = risky[leaders].assign(**{"other equities": risky.drop(columns=leaders).sum(axis=1)})
    grouped = grouped.join(wide[safe])
    return grouped.resample("MS").mean().dropna(how="all")


@dg.asset(
    key=["reports", "tearsheet"],
    group_name="backtest",
    kinds={"python", "html"},
    deps=[
        dg.AssetKey(["marts", "backtest_summary"]),
        dg.AssetKey(["marts", "backtest_daily"]),
        dg.AssetKey(["marts", "allocations"]),
        dg.AssetKey(["marts", "model_leaderboard"]),
        dg.AssetKey(["marts", "risk_var"]),
        dg.AssetKey(["marts", "var_backtests"]),
        dg.AssetKey(["marts", "stress_tests"]),
        dg.AssetKey(["marts", "stress_monte_carlo"]),
        dg.AssetKey(["marts", "llm_scores"]),
    ],
    description="HTML tearsheet (reports/tearsheet.html next to the warehouse file): the summary of every "
    "strategy; for barbell, governed and risk_parity the equity curve against the benchmark, drawdown, "
    "rolling Sharpe, monthly returns heatmap, allocation by sleeve and the one-session 99 % VaR and ES against "
    "the losses that followed; the VaR backtests of those three and the benchmark; their current books' stress "
    "(shocks and Monte Carlo); the model leaderboard; and, once the LLM source has realised signals, its scores "
    "and book beside the time-series models' on the same rows. "
    "The barbell's plots are also this asset's metadata.",
)
def tearsheet(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    daily, summary, leaderboard = tearsheet_inputs(warehouse)
    daily["date"] = pd.to_datetime(daily["date"])
    bench = daily[daily["strategy"] == BENCHMARK].set_index("date")
    sections = {}
    estimates = drawn_var(warehouse, TEARSHEET_STRATEGIES)
    for strategy in TEARSHEET_STRATEGIES:
        own = daily[daily["strategy"] == strategy].set_index("date")
        if own.empty:
            continue
        alloc = allocation_rows(warehouse, [strategy])[["date", "ticker", "weight"]]
        sections[strategy] = figures(strategy, own, bench, sleeve_weights(alloc))
        own_var = estimates[estimates["strategy"] == strategy].drop(columns="strategy")
        if not own_var.empty:
            sections[strategy]["var"] = var_plot(strategy, own_var)
    if not sections:
        raise ValueError(f"marts.backtest_daily holds none of {TEARSHEET_STRATEGIES}")
    path = Path(warehouse.abs_path).parent / "reports" / "tearsheet.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tests = var_backtests(warehouse)
    tests = tests[tests["strategy"].isin([*TEARSHEET_STRATEGIES, BENCHMARK])]
    stress = current_stress(warehouse, TEARSHEET_STRATEGIES)
    llm = comparison_table(llm_scores(warehouse), daily)
    path.write_text(page("pmx tearsheet", summary, sections, leaderboard, tests, stress, llm), encoding="utf-8")
    featured = next(iter(sections))
    plots = {
        f"{featured}/{name}": dg.MetadataValue.md(f"![{name}]({data_uri(png)})")
        for name, png in sections[featured].items()
    }
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "strategies": ", ".join(sections),
            **plots,
            "leaderboard": dg.MetadataValue.md(leaderboard.round(4).to_markdown(index=False)),
        }
    )
