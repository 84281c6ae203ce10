"""Statistical validation assets: pairwise model tests and the model leaderboard."""

import dagster as dg

from dagster_pmx.defs import schemas
from dagster_pmx.resources import Warehouse
from python_models.registry import BASELINE
from python_models.validation import leaderboard, pairwise_comparisons

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
            "(HLN) on the daily cross-sectional mean loss differential, and the paired t-test on the "
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
    ],
    pool="warehouse",
)
def model_validation(context: dg.AssetExecutionContext, warehouse: Warehouse):
    forecasts = warehouse.query(
        "select model, ticker, asof_date, horizon, y_pred, y_true from marts.forecasts where y_true is not null"
    )
    daily = warehouse.query("select strategy, date, net_return from marts.backtest_daily order by date")
    comparisons = pairwise_comparisons(forecasts)
    board = leaderboard(forecasts, comparisons, daily, BASELINE, reps=BOOTSTRAP_REPS)
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
        },
    )
