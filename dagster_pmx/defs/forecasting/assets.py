"""Forecasting assets: walk-forward forecasts of each model, the ensemble, and model scores."""

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.forecasting import fits as fit_store
from dagster_pmx.defs.reads import forecasts_with_outcomes, sessions, sessions_back
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.evaluation.metrics import score_panel
from python_models.evaluation.walk_forward import (
    DEFAULT_HORIZONS,
    POOLED,
    WalkForwardConfig,
    forecast_from_fits,
    refit_latest,
    run_panel,
)
from python_models.forecasters.base import PanelForecaster
from python_models.forecasters.ensemble import VARIANTS, ensemble_panel
from python_models.forecasters.hmm import GaussianHmm, walk_forward_regimes
from python_models.forecasters.registry import BASELINE, forecasters


def walk_forward_config(settings: PmxSettings) -> WalkForwardConfig:
    return WalkForwardConfig(
        horizons=DEFAULT_HORIZONS,
        train_window=settings.train_window,
        refit_every=settings.refit_every,
        embargo=settings.embargo,
    )


MODES = ("walk_forward", "incremental", "retrain")


class ForecastRun(dg.Config):
    """How a run forecasts: ``walk_forward`` rebuilds the whole out-of-sample history (the full
    build); ``incremental`` forecasts only the sessions not yet forecast, with the current fits
    (the daily refresh); ``retrain`` first refits every model on the latest window and stores the
    new fit versions (the weekly retrain). Without stored fits, the last two walk forward."""

    mode: str = "walk_forward"


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
def base_forecasts(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, config: ForecastRun):
    if config.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {config.mode!r}")
    wf = walk_forward_config(settings)
    models = forecasters(settings.models or None)
    pooled = {m.name for m in models if isinstance(m, PanelForecaster)}
    for model in models:
        if hasattr(model, "n_jobs"):  # pooled models run in this process: give them the worker cores
            model.n_jobs = settings.workers
    stored = {} if config.mode == "walk_forward" else fit_store.current(warehouse, [m.name for m in models])
    # extending stored fits reads from the earliest of their samples on (a fit forecasts from its sample's
    # start): the refresh's reads stay the same size however long the history grows
    since = min((f.train_start for f in stored.values()), default=None) if config.mode == "incremental" else None
    returns, features = model_inputs(warehouse, settings, models, since)
    if config.mode == "retrain":
        refits = refit_latest(models, returns, wf, features)
        fit_store.store(warehouse, refits, "retrain", context.run_id)
        stored.update(refits)
        context.log.info(
            f"retrain: {len(refits)} fits on the window ending {max(f.train_end for f in refits.values())}"
        )
    needed = {(m.name, POOLED) for m in models if m.name in pooled}
    needed |= {(m.name, t) for m in models if m.name not in pooled for t in returns["ticker"].unique()}
    if config.mode != "walk_forward" and needed <= set(stored) and has_forecasts(warehouse):
        yield from extend_forecasts(context, warehouse, stored, returns, features, pooled)
        return
    if config.mode != "walk_forward":
        context.log.warning(f"{config.mode}: no stored fit for {sorted(needed - set(stored))[:5]}: walking forward")
        if since is not None:  # the walk-forward starts from the whole history
            returns, features = model_inputs(warehouse, settings, models)
    context.log.info(
        f"walk-forward: {len(models)} models x {returns['ticker'].nunique()} tickers, "
        f"window {wf.train_window}, refit every {wf.refit_every}, gap {wf.gap}"
    )

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            context.log.info(f"progress: {done}/{total} walk-forward runs (model x ticker) done")

    stats: dict = {}
    importances: list = []
    last_fits: dict = {}
    frame = run_panel(
        models,
        returns,
        wf,
        start=settings.forecast_start,
        workers=settings.workers,
        progress=progress,
        stats=stats,
        features=features,
        importances=importances,
        fits=last_fits,
    )
    frame["fit_id"] = fit_store.fit_ids(frame, pooled)
    rows = warehouse.replace_table("ml.base_forecasts", frame)
    n_fits = fit_store.store(warehouse, last_fits, "walk_forward", context.run_id)
    imp = pd.concat(importances, ignore_index=True)[IMPORTANCE_COLUMNS] if importances else empty_importances()
    n_imp = warehouse.replace_table("marts.feature_importances", imp)
    yield dg.MaterializeResult(
        asset_key=["ml", "base_forecasts"],
        metadata={
            "dagster/row_count": rows,
            "mode": "walk_forward",
            "models": ", ".join(m.name for m in models),
            "first_asof": str(frame["asof_date"].min().date()),
            "last_asof": str(frame["asof_date"].max().date()),
            "fits_stored": n_fits,
            "fits_not_converged": int((~frame.drop_duplicates(["model", "ticker", "train_end"])["converged"]).sum()),
            **{f"fits/{name}": s["fits"] for name, s in stats.items()},
            **{f"failed_fits/{name}": s["failed"] for name, s in stats.items() if s["failed"]},
            **{f"seconds/{name}": round(s["seconds"], 2) for name, s in stats.items()},
        },
    )
    # no pooled model in PMX_MODELS: no importances, and nothing to rank
    top = (
        imp.groupby(["horizon", "feature"])["gain"].mean().groupby("horizon").nlargest(5).droplevel(0)
        if n_imp
        else None
    )
    yield dg.MaterializeResult(
        asset_key=["marts", "feature_importances"],
        metadata={
            "dagster/row_count": n_imp,
            "top_features": dg.MetadataValue.md(top.round(4).reset_index().to_markdown(index=False)) if n_imp else "",
        },
    )


def model_inputs(
    warehouse: Warehouse, settings: PmxSettings, models: list, since: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The returns of the universe (and the features, where a model needs them) from ``since`` on."""
    after = "" if since is None else f" and date >= '{pd.Timestamp(since):%Y-%m-%d}'"
    returns = warehouse.query(
        "select ticker, date, log_return from intermediate.int_returns "
        f"where log_return is not null and ticker <> ?{after} order by ticker, date",
        [settings.benchmark],
    )
    if settings.ticker_list:
        returns = returns[returns["ticker"].isin(settings.ticker_list)]
    features = None
    if any(getattr(m, "needs_features", False) for m in models):
        features = warehouse.query(
            f"select * exclude (refreshed_at) from marts.features where ticker <> ?{after} order by ticker, date",
            [settings.benchmark],
        )
    return returns, features


def has_forecasts(warehouse: Warehouse) -> bool:
    return "ml.base_forecasts" in warehouse.tables()


def extend_forecasts(context, warehouse: Warehouse, stored: dict, returns, features, pooled: set[str]):
    """The daily refresh's forecasting: the sessions not yet forecast, with the current fits;
    then the target date of earlier rows whose target session has now arrived."""
    last = warehouse.query("select model, ticker, max(asof_date) as last from ml.base_forecasts group by all")
    after = {(r.model, r.ticker): r.last for r in last.itertuples()}
    for model in pooled:
        own = last.loc[last["model"] == model, "last"]
        if len(own):
            after[(model, POOLED)] = own.max()
    new = forecast_from_fits(stored, returns, after, DEFAULT_HORIZONS, features)
    new["fit_id"] = fit_store.fit_ids(new, pooled) if len(new) else pd.Series(dtype="string")
    with warehouse.connect() as con:
        columns = [c[0] for c in con.execute("describe ml.base_forecasts").fetchall()]
        con.register("incoming", new[columns] if len(new) else new.reindex(columns=columns))
        con.execute("begin transaction")
        # a rerun of the same day replaces its own rows: identical rows, never duplicates
        con.execute(
            "delete from ml.base_forecasts f using incoming i where f.model = i.model and f.ticker = i.ticker "
            "and f.asof_date = i.asof_date and f.horizon = i.horizon"
        )
        con.execute("insert into ml.base_forecasts by name select * from incoming")
        pending = con.execute(
            "select model, ticker, asof_date, horizon from ml.base_forecasts where target_date is null"
        ).df()
        sessions = returns.groupby("ticker")["date"].apply(lambda d: pd.DatetimeIndex(d))
        pending["target_date"] = pd.NaT
        for ticker, idx in pending.groupby("ticker").groups.items():
            if ticker in sessions.index:
                rows = pending.loc[idx]
                at = sessions[ticker].get_indexer(rows["asof_date"])  # -1: an origin before the rows read
                pos = at + rows["horizon"].to_numpy()
                ok = (at >= 0) & (pos < len(sessions[ticker]))
                pending.loc[rows.index[ok], "target_date"] = sessions[ticker][pos[ok]]
        con.register("arrived", pending.dropna(subset=["target_date"]))
        con.execute(
            "update ml.base_forecasts f set target_date = a.target_date from arrived a where f.model = a.model "
            "and f.ticker = a.ticker and f.asof_date = a.asof_date and f.horizon = a.horizon"
        )
        con.execute("commit")
        total = con.execute("select count(*) from ml.base_forecasts").fetchone()[0]
    context.log.info(f"incremental: {len(new)} new forecast rows from {len(stored)} stored fits")
    yield dg.MaterializeResult(
        asset_key=["ml", "base_forecasts"],
        metadata={
            "dagster/row_count": int(total),
            "mode": "incremental",
            "rows_added": len(new),
            "new_origins": ", ".join(sorted({str(d)[:10] for d in new["asof_date"]})) if len(new) else "none",
            "fits_used": len(stored),
            "targets_arrived": int(pending["target_date"].notna().sum()),
        },
    )
    yield dg.MaterializeResult(asset_key=["marts", "feature_importances"], metadata={"mode": "unchanged"})


def arrived_targets(warehouse: Warehouse, since: pd.Timestamp) -> None:
    """Give earlier ensemble rows the target date their single models' rows have gained since."""
    with warehouse.connect() as con:
        con.execute(
            """
            update ml.ensemble_forecasts e set target_date = b.target_date
            from (
                select ticker, asof_date, horizon, max(target_date) as target_date from ml.base_forecasts
                where asof_date >= ? and target_date is not null group by all
            ) b
            where e.target_date is null and e.ticker = b.ticker and e.asof_date = b.asof_date
                and e.horizon = b.horizon
            """,
            [since],
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
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, config: ForecastRun
) -> dg.MaterializeResult:
    returns = warehouse.query(
        "select date, log_return from intermediate.int_returns where ticker = ? and log_return is not null "
        "order by date",
        [settings.benchmark],
    )
    series = pd.Series(returns["log_return"].to_numpy(float), index=pd.DatetimeIndex(returns["date"]))
    wf, model = walk_forward_config(settings), GaussianHmm()
    since = None
    if config.mode == "incremental" and "ml.regime_probabilities" in warehouse.tables():
        since = warehouse.query("select max(date) as d from ml.regime_probabilities")["d"].iloc[0]
        since = None if pd.isna(since) else pd.Timestamp(since)
    frame = walk_forward_regimes(series, wf.train_window, model.refit_every or wf.refit_every, wf.gap, model, since)
    frame.insert(0, "ticker", settings.benchmark)
    if since is None:
        rows = warehouse.replace_table("ml.regime_probabilities", frame)
    else:  # only the folds that hold the new sessions were fitted: their rows are the full run's
        rows = warehouse.append_after("ml.regime_probabilities", frame, since)
        frame = warehouse.query(
            "select * from ml.regime_probabilities where date = (select max(date) from ml.regime_probabilities)"
        )
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
def ensemble(context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, config: ForecastRun):
    calendar = sessions(warehouse)
    since = None
    if config.mode == "incremental" and "ml.ensemble_forecasts" in warehouse.tables():
        since = warehouse.query("select max(asof_date) as d from ml.ensemble_forecasts")["d"].iloc[0]
        since = None if pd.isna(since) else pd.Timestamp(since)
    first = None
    if since is not None:
        # enough origins before the new ones to re-estimate their weights exactly as the whole history would
        lookback = settings.ensemble_window + max(DEFAULT_HORIZONS) + 2 * settings.ensemble_reweight_every
        first = sessions_back(calendar, since, lookback)
    frame = forecasts_with_outcomes(
        warehouse, ["ml.base_forecasts"], "model, ticker, asof_date, horizon, target_date, y_pred, y_std", since=first
    )
    regimes = warehouse.query("select date, regime, probability from ml.regime_probabilities")
    combined, weights = ensemble_panel(
        frame,
        window=settings.ensemble_window,
        shrinkage=settings.ensemble_shrinkage,
        reweight_every=settings.ensemble_reweight_every,
        methods=tuple(VARIANTS),
        regimes=regimes,
        calendar=calendar,
        after=since,
    )
    if since is None:
        n_f = warehouse.replace_table("ml.ensemble_forecasts", combined)
        n_w = warehouse.replace_table("ml.ensemble_weights", weights)
    else:  # the rows after the last stored origin; the same rows the whole history gives them
        n_f = warehouse.append_after("ml.ensemble_forecasts", combined, since, column="asof_date")
        n_w = warehouse.append_after("ml.ensemble_weights", weights, since, column="asof_date")
        arrived_targets(warehouse, first)
        context.log.info(f"incremental: {len(combined)} ensemble rows after {since.date()}")
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
