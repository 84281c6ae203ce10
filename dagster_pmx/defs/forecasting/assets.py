"""Forecasting assets: walk-forward forecasts of each model, the ensemble, and model scores."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.forecasting import reads
from dagster_pmx.defs.forecasting.modes import MODE_RUNS, MODES, configured_models, walk_forward_config
from dagster_pmx.defs.reads import forecasts_with_outcomes, sessions, ticker_batches, tickers_of
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.evaluation.metrics import score_panel
from python_models.forecasters.base import DEFAULT_HORIZONS
from python_models.forecasters.ensemble import VARIANTS, ensemble_panel
from python_models.forecasters.hmm import GaussianHmm, walk_forward_regimes
from python_models.forecasters.registry import BASELINE
from python_models.sessions import sessions_before


class ForecastRun(dg.Config):
    """How a run forecasts: ``walk_forward`` rebuilds the whole out-of-sample history (the full
    build); ``incremental`` forecasts only the sessions not yet forecast, with the current fits
    (the daily refresh); ``retrain`` first refits every model on the latest window and stores the
    new fit versions (the weekly retrain). Without stored fits, the last two walk forward
    (:mod:`dagster_pmx.defs.forecasting.modes`)."""

    mode: str = "walk_forward"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["ml", "base_forecasts"],
            group_name="forecasting",
            kinds={"python", "duckdb"},
            deps=[dg.AssetKey(["intermediate", "int_returns"]), dg.AssetKey(["marts", "features"])],
            metadata={"dagster/column_schema": schemas.BASE_FORECASTS},
            description="Out-of-sample forecasts of every model in PMX_MODELS (default: random walk, GARCH(1,1)-t, "
            "GJR-GARCH-t, ARMA(1,1) via SARIMAX, SAMoSSA, Gaussian HMM, Bayesian ridge, XGBoost pooled across "
            "tickers on marts.features) for horizons 1/5/21/63 under walk-forward validation: rolling window, refit "
            "cadence (per model where it sets one), purge of the longest horizon plus an embargo. Each row's "
            "asof_date is the close it was made at. Metadata: refits, failed fits and seconds per model.",
        ),
        dg.AssetSpec(
            ["ml", "fit_diagnostics"],
            group_name="forecasting",
            kinds={"python", "duckdb"},
            deps=[dg.AssetKey(["intermediate", "int_returns"]), dg.AssetKey(["marts", "features"])],
            metadata={"dagster/column_schema": schemas.FIT_DIAGNOSTICS},
            description="What every fit of every model reports of itself (one row per fit and diagnostic): the full "
            "build's walk-forward fits, then the weekly retrain's. Information criteria, chosen orders, boosting "
            "rounds, early-stopping epochs and validation slopes, the learned policy's out-of-sample uplift.",
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
def base_forecasts(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, config: ForecastRun):
    if config.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {config.mode!r}")
    yield from MODE_RUNS[config.mode](context, warehouse, settings, configured_models(settings))


#: Gives earlier ensemble rows the target date their single models' rows have gained since the origin ``?``.
UPDATE_ENSEMBLE_TARGETS = """
    update ml.ensemble_forecasts e set target_date = b.target_date
    from (
        select ticker, asof_date, horizon, max(target_date) as target_date from ml.base_forecasts
        where asof_date >= ? and target_date is not null group by all
    ) b
    where e.target_date is null and e.ticker = b.ticker and e.asof_date = b.asof_date
        and e.horizon = b.horizon
"""


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
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, config: ForecastRun
) -> dg.MaterializeResult:
    extend = config.mode == "incremental" and warehouse.has("ml.regime_probabilities")
    series, since = reads.benchmark_returns(warehouse, settings.benchmark, regimes_stored=extend)
    wf, model = walk_forward_config(settings), GaussianHmm()
    frame = walk_forward_regimes(series, wf.train_window, model.refit_every or wf.refit_every, wf.gap, model, since)
    frame.insert(0, "ticker", settings.benchmark)
    if since is None:
        rows = warehouse.replace_table("ml.regime_probabilities", frame)
    else:  # only the folds that hold the new sessions were fitted: their rows are the full run's
        rows = warehouse.append_after("ml.regime_probabilities", frame, since)
        frame = reads.latest_regimes(warehouse)
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
            metadata={"dagster/column_schema": schemas.ENSEMBLE_FORECASTS},
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
            metadata={"dagster/column_schema": schemas.ENSEMBLE_WEIGHTS},
            description="Each ensemble's weights on the models per (ticker, horizon), stored at the origins where they "
            "change (inverse MSE and stacking at each re-estimation, the regime weights daily): the weights at any "
            "origin are the latest row at or before it (ASOF JOIN). Column 'ensemble' names the combination, 'model' "
            "the single model.",
        ),
    ],
    pool="warehouse",
)
def ensemble(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, config: ForecastRun):
    calendar = sessions(warehouse)
    extend = config.mode == "incremental" and warehouse.has("ml.ensemble_forecasts")
    regimes, since = reads.ensemble_inputs(warehouse, ensembles_stored=extend)

    def combine(tickers: list[str] | None, first: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        frame = forecasts_with_outcomes(
            warehouse,
            ["ml.base_forecasts"],
            "model, ticker, asof_date, horizon, target_date, y_pred, y_std",
            since=first,
            tickers=tickers,
        )
        return ensemble_panel(
            frame,
            window=settings.ensemble_window,
            shrinkage=settings.ensemble_shrinkage,
            power=settings.ensemble_power,
            reweight_every=settings.ensemble_reweight_every,
            methods=tuple(VARIANTS),
            regimes=regimes,
            calendar=calendar,
            after=since,
        )

    weight_sums: list[pd.DataFrame] = []
    if since is None:  # every origin: a batch of tickers at a time (each (ticker, horizon) is combined on its own)

        def batches() -> Iterator[dict[str, pd.DataFrame]]:
            for tickers in ticker_batches(tickers_of(warehouse, "ml.base_forecasts"), settings.ticker_batch):
                combined, weights = combine(tickers)
                weight_sums.append(_weight_sums(weights))
                yield {"ml.ensemble_forecasts": combined, "ml.ensemble_weights": weights}

        rows = warehouse.replace_tables_in_batches(batches())
    else:  # the rows after the last stored origin; the same rows the whole history gives them
        # enough origins before the new ones to re-estimate their weights exactly as the whole history would
        lookback = settings.ensemble_window + max(DEFAULT_HORIZONS) + 2 * settings.ensemble_reweight_every
        first = sessions_before(calendar, since, lookback)
        combined, weights = combine(None, first)
        weight_sums.append(_weight_sums(weights))
        rows = warehouse.append_after_many(
            [
                ("ml.ensemble_forecasts", combined, since, "asof_date"),
                ("ml.ensemble_weights", weights, since, "asof_date"),
            ],
            then=[(UPDATE_ENSEMBLE_TARGETS, [first])],
        )
        context.log.info(f"incremental: {len(combined)} ensemble rows after {since.date()}")
    totals = pd.concat(weight_sums).groupby(level=["ensemble", "model"], observed=True).sum()
    mean_w = (totals["sum"] / totals["count"]).round(3).unstack(0)
    n_f, n_w = rows["ml.ensemble_forecasts"], rows["ml.ensemble_weights"]
    yield dg.MaterializeResult(asset_key=["ml", "ensemble_forecasts"], metadata={"dagster/row_count": n_f})
    yield dg.MaterializeResult(
        asset_key=["ml", "ensemble_weights"],
        metadata={"dagster/row_count": n_w, "mean_weight": dg.MetadataValue.md(mean_w.to_markdown())},
    )


def _weight_sums(weights: pd.DataFrame) -> pd.DataFrame:
    """Sum and count of the weights per (ensemble, model): the mean weight, over batches."""
    return weights.groupby(["ensemble", "model"], observed=True)["weight"].agg(["sum", "count"])


@dg.asset(
    key=["marts", "model_scores"],
    group_name="forecasting",
    metadata={"dagster/column_schema": schemas.MODEL_SCORES},
    pool="warehouse",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey(["marts", "forecasts"])],
    description="Out-of-sample accuracy per (model, ticker, horizon): n_obs, RMSE, MAE, sMAPE (%), "
    "directional accuracy, tracking error, and the Diebold–Mariano statistic (fixed-smoothing) "
    "and p-value against the random walk (negative: lower squared error than the random walk).",
)
def model_scores(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings
) -> dg.MaterializeResult:
    parts: list[pd.DataFrame] = []

    def batches() -> Iterator[dict[str, pd.DataFrame]]:
        # each (model, ticker, horizon) is scored against the baseline on the same ticker: a batch of tickers at a time
        for tickers in ticker_batches(tickers_of(warehouse, "marts.forecasts"), settings.ticker_batch):
            frame = reads.scored_forecasts(warehouse, tickers)
            if not (frame["model"].eq(BASELINE) & frame["y_true"].notna() & frame["y_pred"].notna()).any():
                continue  # no ticker of this batch has a realised baseline forecast to be scored against
            scores = score_panel(frame, BASELINE)
            parts.append(scores[["model", "horizon", "rmse", "directional_accuracy", "dm_stat"]])
            yield {"marts.model_scores": scores}
        if not parts:
            raise ValueError(f"no realised forecasts of the baseline {BASELINE!r} to score against")

    rows = warehouse.replace_tables_in_batches(batches())["marts.model_scores"]
    scores = pd.concat(parts, ignore_index=True)
    board = scores.groupby(["model", "horizon"])[["rmse", "directional_accuracy", "dm_stat"]].mean().round(4)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "leaderboard": dg.MetadataValue.md(board.reset_index().to_markdown(index=False)),
        }
    )
