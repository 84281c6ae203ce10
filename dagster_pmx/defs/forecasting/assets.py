"""Forecasting assets: walk-forward forecasts of each model, the ensemble, and model scores."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.reads import forecasts_with_outcomes
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.ensemble import VARIANTS, ensemble_panel
from python_models.hmm import GaussianHmm, walk_forward_regimes
from python_models.metrics import score_panel
from python_models.registry import BASELINE, forecasters
from python_models.walk_forward import DEFAULT_HORIZONS, WalkForwardConfig, run_panel


def walk_forward_config(settings: PmxSettings) -> WalkForwardConfig:
    return WalkForwardConfig(
        horizons=DEFAULT_HORIZONS,
        train_window=settings.train_window,
        refit_every=settings.refit_every,
        embargo=settings.embargo,
    )


IMPORTANCE_COLUMNS = [c.name for c in schemas.FEATURE_IMPORTANCES.columns]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["ml", "base_forecasts"],
            group_name="forecasting",
            kinds={"python", "duckdb"},
            deps=[dg.AssetKey(["intermediate", "int_returns"]), dg.AssetKey(["marts", "features"])],
            description="Out-of-sample forecasts of every model in PMX_MODELS (default: random walk, GARCH(1,1)-t, "
            "GJR-GARCH-t, ARMA(1,1) via SARIMAX, SAMoSSA, Gaussian HMM, Bayesian ridge, XGBoost pooled across "
            "tickers on marts.features) for horizons 1/5/21/63 under walk-forward validation: rolling window, refit "
            "cadence (per model where it sets one), purge of the longest horizon plus an embargo. Each row's "
            "asof_date is the close it was made at. Metadata: refits, failed fits and seconds per model.",
        ),
        dg.AssetSpec(
            ["marts", "feature_importances"],
            group_name="forecasting",
            kinds={"python", "duckdb"},
            deps=[dg.AssetKey(["marts", "features"])],
            metadata={"dagster/column_schema": schemas.FEATURE_IMPORTANCES},
            description="Feature importances of every fit of the pooled XGBoost model, per horizon: share of the "
            "split gain and split count of each marts.features column (empty when xgboost is not in PMX_MODELS).",
        ),
    ],
    pool="warehouse",
)
def base_forecasts(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings):
    returns = warehouse.query(
        "select ticker, date, log_return from intermediate.int_returns "
        "where log_return is not null and ticker <> ? order by ticker, date",
        [settings.benchmark],
    )
    if settings.ticker_list:
        returns = returns[returns["ticker"].isin(settings.ticker_list)]
    config = walk_forward_config(settings)
    models = forecasters(settings.models or None)
    for model in models:
        if hasattr(model, "n_jobs"):  # pooled models run in this process: give them the worker cores
            model.n_jobs = settings.workers
    features = None
    if any(getattr(m, "needs_features", False) for m in models):
        features = warehouse.query(
            "select * exclude (refreshed_at) from marts.features where ticker <> ? order by ticker, date",
            [settings.benchmark],
        )
    context.log.info(
        f"walk-forward: {len(models)} models x {returns['ticker'].nunique()} tickers, "
        f"window {config.train_window}, refit every {config.refit_every}, gap {config.gap}"
    )

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            context.log.info(f"progress: {done}/{total} walk-forward runs (model x ticker) done")

    stats: dict = {}
    importances: list = []
    frame = run_panel(
        models,
        returns,
        config,
        start=settings.forecast_start,
        workers=settings.workers,
        progress=progress,
        stats=stats,
        features=features,
        importances=importances,
    )
    rows = warehouse.replace_table("ml.base_forecasts", frame)
    imp = pd.concat(importances, ignore_index=True)[IMPORTANCE_COLUMNS] if importances else empty_importances()
    n_imp = warehouse.replace_table("marts.feature_importances", imp)
    yield dg.MaterializeResult(
        asset_key=["ml", "base_forecasts"],
        metadata={
            "dagster/row_count": rows,
            "models": ", ".join(m.name for m in models),
            "first_asof": str(frame["asof_date"].min().date()),
            "last_asof": str(frame["asof_date"].max().date()),
            "fits_not_converged": int((~frame.drop_duplicates(["model", "ticker", "train_end"])["converged"]).sum()),
            **{f"fits/{name}": s["fits"] for name, s in stats.items()},
            **{f"failed_fits/{name}": s["failed"] for name, s in stats.items() if s["failed"]},
            **{f"seconds/{name}": round(s["seconds"], 2) for name, s in stats.items()},
        },
    )
    top = imp.groupby(["horizon", "feature"])["gain"].mean().groupby("horizon").nlargest(5).droplevel(0)
    yield dg.MaterializeResult(
        asset_key=["marts", "feature_importances"],
        metadata={
            "dagster/row_count": n_imp,
            "top_features": dg.MetadataValue.md(top.round(4).reset_index().to_markdown(index=False)) if n_imp else "",
        },
    )


def empty_importances() -> pd.DataFrame:
    """marts.feature_importances with no rows but its column types."""
    types = {"varchar": "string", "bigint": "int64", "date": "datetime64[ns]", "double": "float64"}
    return pd.DataFrame({c.name: pd.Series(dtype=types[c.type]) for c in schemas.FEATURE_IMPORTANCES.columns})


@dg.asset(
    key=["ml", "regime_probabilities"],
    group_name="forecasting",
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["intermediate", "int_returns"])],
    metadata={"dagster/column_schema": schemas.REGIME_PROBABILITIES},
    description="Market regimes: filtered probabilities of a 4-state Gaussian HMM on the benchmark's daily return "
    "and 10-session volatility, refitted walk-forward (each probability from a fit that ended before it, with "
    "the forecasters' purge and embargo; forward filter only, never the smoother).",
)
def regime_probabilities(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings
) -> dg.MaterializeResult:
    returns = warehouse.query(
        "select date, log_return from intermediate.int_returns where ticker = ? and log_return is not null "
        "order by date",
        [settings.benchmark],
    )
    series = pd.Series(returns["log_return"].to_numpy(float), index=pd.DatetimeIndex(returns["date"]))
    config, model = walk_forward_config(settings), GaussianHmm()
    frame = walk_forward_regimes(
        series, config.train_window, model.refit_every or config.refit_every, config.gap, model
    )
    frame.insert(0, "ticker", settings.benchmark)
    rows = warehouse.replace_table("ml.regime_probabilities", frame)
    latest = frame[frame["date"] == frame["date"].max()].set_index("regime")["probability"]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "first_date": str(frame["date"].min().date()),
            "last_date": str(frame["date"].max().date()),
            "fits": int(frame["train_end"].nunique()),
            **{f"latest/regime_{k}": round(float(v), 4) for k, v in latest.items()},
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["ml", "ensemble_forecasts"],
            group_name="forecasting",
            kinds={"python", "duckdb"},
            deps=[
                dg.AssetKey(["ml", "base_forecasts"]),
                dg.AssetKey(["intermediate", "int_forward_returns"]),
                dg.AssetKey(["ml", "regime_probabilities"]),
            ],
            description="Three combinations of the single models, each from errors realised by its asof_date only, "
            "re-weighted every PMX_ENSEMBLE_REWEIGHT_EVERY sessions and shrunk toward equal weights: 'ensemble' "
            "(inverse trailing MSE), 'ensemble_stacking' (walk-forward least squares with non-negative weights "
            "summing to one) and 'ensemble_regime' (inverse MSE expected under today's filtered HMM regime "
            "probabilities).",
        ),
        dg.AssetSpec(
            ["ml", "ensemble_weights"],
            group_name="forecasting",
            kinds={"python", "duckdb"},
            deps=[dg.AssetKey(["ml", "base_forecasts"]), dg.AssetKey(["intermediate", "int_forward_returns"])],
            description="Each ensemble's weight on each model per (ticker, horizon, asof_date): column 'ensemble' "
            "names the combination, 'model' the single model.",
        ),
    ],
    pool="warehouse",
)
def ensemble(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings):
    frame = forecasts_with_outcomes(
        warehouse, ["ml.base_forecasts"], "model, ticker, asof_date, horizon, target_date, y_pred, y_std"
    )
    regimes = warehouse.query("select date, regime, probability from ml.regime_probabilities")
    combined, weights = ensemble_panel(
        frame,
        window=settings.ensemble_window,
        shrinkage=settings.ensemble_shrinkage,
        reweight_every=settings.ensemble_reweight_every,
        methods=tuple(VARIANTS),
        regimes=regimes,
    )
    n_f = warehouse.replace_table("ml.ensemble_forecasts", combined)
    n_w = warehouse.replace_table("ml.ensemble_weights", weights)
    mean_w = weights.groupby(["ensemble", "model"], observed=True)["weight"].mean().round(3).unstack(0)
    yield dg.MaterializeResult(asset_key=["ml", "ensemble_forecasts"], metadata={"dagster/row_count": n_f})
    yield dg.MaterializeResult(
        asset_key=["ml", "ensemble_weights"],
        metadata={"dagster/row_count": n_w, "mean_weight": dg.MetadataValue.md(mean_w.to_markdown())},
    )


@dg.asset(
    key=["marts", "model_scores"],
    group_name="forecasting",
    metadata={"dagster/column_schema": schemas.MODEL_SCORES},
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["marts", "forecasts"])],
    description="Out-of-sample accuracy per (model, ticker, horizon): n_obs, RMSE, MAE, sMAPE (%), "
    "directional accuracy, tracking error, and the Diebold–Mariano statistic (HLN-corrected) "
    "and p-value against the random walk (negative: lower squared error than the random walk).",
)
def model_scores(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    frame = warehouse.query("select model, ticker, asof_date, horizon, y_pred, y_true from marts.forecasts")
    scores = score_panel(frame, BASELINE)
    rows = warehouse.replace_table("marts.model_scores", scores)
    board = scores.groupby(["model", "horizon"])[["rmse", "directional_accuracy", "dm_stat"]].mean().round(4)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "leaderboard": dg.MetadataValue.md(board.reset_index().to_markdown(index=False)),
        }
    )
