"""Statistical validation assets: pairwise model tests and the model leaderboard."""

import dagster as dg

from dagster_pmx.defs import schemas
from dagster_pmx.defs.forecasting.reads import realised_forecasts, validation_inputs
from dagster_pmx.defs.reads import market_regimes, ticker_batches, tickers_of
from dagster_pmx.defs.transform.assets import DBT_VARS
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.backtest.tearsheet import bar_plot, markdown_image
from python_models.evaluation.comparison import PooledEvidence, design_targets, leaderboard
from python_models.forecasters.registry import BASELINE

#: Stationary-bootstrap resamples behind every interval of the leaderboard.
BOOTSTRAP_REPS = 500


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["marts", "model_comparisons"],
            group_name="validation",
            kinds={"python", "duckdb"},
            deps=[dg.AssetKey(["marts", "forecasts"])],
            metadata={"dagster/column_schema": schemas.MODEL_COMPARISONS},
            description="Every pair of models (and the ensemble) per horizon, pooled over tickers: Diebold–Mariano "
            "(fixed-smoothing) on the daily cross-sectional mean loss differential, and the paired t-test on the "
            "per-forecast differentials (which ignores overlap and cross-sectional dependence).",
        ),
        dg.AssetSpec(
            ["marts", "model_leaderboard"],
            group_name="validation",
            kinds={"python", "duckdb"},
            deps=[dg.AssetKey(["marts", "forecasts"]), dg.AssetKey(["marts", "backtest_daily"])],
            metadata={"dagster/column_schema": schemas.MODEL_LEADERBOARD},
            description="Models ranked per horizon by pooled MSE, with the MSE ratio and Diebold–Mariano test against "
            "the random walk, directional accuracy and the Sharpe ratio of the model's strategy, each with a "
            "90 % stationary-bootstrap interval.",
        ),
        dg.AssetSpec(
            ["marts", "design_targets"],
            group_name="validation",
            kinds={"python", "duckdb"},
            deps=[
                dg.AssetKey(["marts", "forecasts"]),
                dg.AssetKey(["marts", "signals"]),
                dg.AssetKey(["marts", "backtest_daily"]),
                dg.AssetKey(["ml", "regime_probabilities"]),
            ],
            metadata={"dagster/column_schema": schemas.DESIGN_TARGETS},
            description="The original design's targets, measured out of sample: directional accuracy > 55 % at the "
            "signal horizon (every model, and 'governed' = the tradable governed signals); for every backtested "
            "strategy, hit rate > 52 %, Sharpe ratio > 1.2, max drawdown < 15 % in the stress windows "
            "(dbt_project.yml's stress_windows) and a positive Sharpe ratio in its worst HMM market regime "
            "(stability across regimes); each with a 90 % stationary-bootstrap interval and a one-sided p-value "
            "against the target (the rates also against a coin flip).",
        ),
    ],
    pool="warehouse",
)
def model_validation(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings):
    # every statistic pools the universe through sums over tickers: a batch of tickers at a time
    evidence = PooledEvidence()
    for tickers in ticker_batches(tickers_of(warehouse, "marts.forecasts"), settings.ticker_batch):
        evidence.add(realised_forecasts(warehouse, tickers))
    daily, governed = validation_inputs(warehouse, BASELINE)
    comparisons = evidence.comparisons()
    board = leaderboard(evidence, comparisons, daily, BASELINE, reps=BOOTSTRAP_REPS)
    targets = design_targets(
        governed,
        daily,
        settings.signal_horizon,
        reps=BOOTSTRAP_REPS,
        evidence=evidence,
        regimes=market_regimes(warehouse),
        stress_windows=[(w["start"], w["end"]) for w in DBT_VARS["stress_windows"]],
    )
    n_t = warehouse.replace_table("marts.design_targets", targets)
    n_c = warehouse.replace_table("marts.model_comparisons", comparisons)
    n_b = warehouse.replace_table("marts.model_leaderboard", board)
    significant = comparisons[comparisons["dm_pvalue"] < 0.05]
    yield dg.MaterializeResult(
        asset_key=["marts", "model_comparisons"],
        metadata={"dagster/row_count": n_c, "pairs_significant_at_5pct": len(significant)},
    )
    shown = board[["horizon", "rank", "model", "mse_ratio", "directional_accuracy", "dm_pvalue", "sharpe"]]
    yield dg.MaterializeResult(
        asset_key=["marts", "model_leaderboard"],
        metadata={
            "dagster/row_count": n_b,
            "leaderboard": dg.MetadataValue.md(shown.round(4).to_markdown(index=False)),
            "sharpe_plot": dg.MetadataValue.md(
                markdown_image(
                    "leaderboard",
                    bar_plot(
                        board[board["horizon"] == settings.signal_horizon].set_index("model")["sharpe"],
                        f"Sharpe of each model's own book, h = {settings.signal_horizon}",
                    ),
                )
            ),
        },
    )
    focus = targets[targets["subject"].isin(["governed", "ensemble", BASELINE])]
    yield dg.MaterializeResult(
        asset_key=["marts", "design_targets"],
        metadata={
            "dagster/row_count": n_t,
            "targets": dg.MetadataValue.md(
                focus[["metric", "subject", "value", "target", "pvalue_target", "met"]]
                .round(4)
                .to_markdown(index=False)
            ),
        },
    )
