"""The three ways ``ml.base_forecasts`` is brought up to date, one function each.

``walk_forward`` (the full build) rebuilds the whole out-of-sample history and stores each run's
last fit; ``incremental`` (the daily refresh) forecasts only the sessions not yet forecast, with the
stored fits; ``retrain`` (the weekly retrain) first refits every model on the latest window, stores
those fits, then extends as ``incremental`` does. Without a stored fit for every (model, ticker) the
last two fall back to a walk-forward. Each yields the ``ml.base_forecasts``, ``ml.fit_diagnostics``
and ``marts.feature_importances`` results of the multi-asset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import TypeAlias

import dagster as dg
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.forecasting import fits as fit_store
from dagster_pmx.defs.forecasting import reads
from dagster_pmx.defs.forecasting.checkpoints import (
    BatchPart,
    Checkpoint,
    checkpoint_root,
    fingerprint,
    keep_batch,
    keep_pooled,
)
from dagster_pmx.defs.reads import ticker_batches
from dagster_pmx.defs.schemas import empty_frame
from dagster_pmx.lake import in_transaction
from dagster_pmx.resources import PmxSettings, Warehouse
from dagster_pmx.staging import StagedTables
from python_models.evaluation.cluster import dask_client, release_freed_memory
from python_models.evaluation.panel import ModelStats, PooledRuns, run_panel
from python_models.evaluation.refresh import forecast_from_fits, refit_latest
from python_models.evaluation.walk_forward import POOLED, FoldFit, WalkForwardConfig
from python_models.forecasters.base import DEFAULT_HORIZONS, Forecaster, PanelForecaster
from python_models.forecasters.registry import forecasters

Model: TypeAlias = Forecaster | PanelForecaster
Inputs: TypeAlias = tuple[pd.DataFrame, pd.DataFrame | None]
Results: TypeAlias = Iterator[dg.MaterializeResult]

IMPORTANCE_COLUMNS = [c.name for c in schemas.FEATURE_IMPORTANCES.columns]


def walk_forward_config(settings: PmxSettings) -> WalkForwardConfig:
    return WalkForwardConfig(
        horizons=DEFAULT_HORIZONS,
        train_window=settings.train_window,
        refit_every=settings.refit_every,
        embargo=settings.embargo,
    )


def configured_models(settings: PmxSettings) -> list[Model]:
    """The models of ``PMX_MODELS``, the pooled ones given the worker cores (they run in this process)."""
    models = forecasters(settings.models or None)
    for model in models:
        if hasattr(model, "n_jobs"):
            model.n_jobs = settings.workers
    return models


def model_inputs(
    warehouse: Warehouse, settings: PmxSettings, models: list[Model], since: pd.Timestamp | None = None
) -> Inputs:
    """The returns of the universe (and the features, where a model needs them) from ``since`` on."""
    needs_features = any(getattr(m, "needs_features", False) for m in models)
    return reads.model_inputs(warehouse, settings.benchmark, settings.ticker_list, since, needs_features)


def walk_forward(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    settings: PmxSettings,
    models: list[Model],
    inputs: Inputs | None = None,
) -> Results:
    """The full build: every model walked forward over the whole history (``inputs`` when already read).

    The single-series models run a batch of ``ticker_batch`` tickers at a time on one Dask client, each
    batch's forecasts staged on disk as it ends, so the step holds one batch's forecasts, not the
    universe's. The pooled models run on the whole panel as tasks of the same cluster, started before the
    batches; each one's forecasts are staged as a batch of their own when it ends, by the worker that made
    them where the cluster is the local one (it shares this disk; a cluster named by ``scheduler`` sends
    them here). The tables are replaced from the staged files once every batch is there. The staged
    batches are a checkpoint (:mod:`~dagster_pmx.defs.forecasting.checkpoints`): a run cut short leaves
    them, and the next walk-forward of the same work fits only the batches missing. The rows do not depend on the batch
    size, nor on where a run was resumed."""
    returns, features = inputs if inputs is not None else model_inputs(warehouse, settings, models)
    wf = walk_forward_config(settings)
    single = [m for m in models if not isinstance(m, PanelForecaster)]
    pooled = [m for m in models if isinstance(m, PanelForecaster)]
    tickers = sorted(returns["ticker"].unique())
    context.log.info(
        f"walk-forward: {len(models)} models x {len(tickers)} tickers, window {wf.train_window}, "
        f"refit every {wf.refit_every}, gap {wf.gap}; single-series models in batches of {settings.ticker_batch}"
    )
    total = len(single) * len(tickers) + len(pooled)
    summary = _Summary()
    staged = StagedTables()
    checkpoint = Checkpoint(
        checkpoint_root(warehouse),
        fingerprint(models, wf, settings.forecast_start, settings.ticker_batch, returns, features),
    )
    kept = set(checkpoint.done())
    for name in sorted(kept):
        part, paths, empty = checkpoint.load(name)
        summary.merge(part)
        staged.add(paths, empty)
    if kept:
        context.log.info(
            f"walk-forward: resumed {len(kept)} batches ({summary.runs}/{total} runs) from {checkpoint.folder}"
        )
    columns = staged_columns(_pooled(models))

    def take(kept: tuple[BatchPart, dict[str, str | None], dict[str, pd.DataFrame]]) -> None:
        """A kept batch's files staged, and its part of the summary taken."""
        part, paths, empty = kept
        staged.add(paths, empty)
        summary.merge(part)

    def progress(done: int, _: int) -> None:
        done += summary.runs
        if done == total or done % max(1, total // 10) == 0:
            context.log.info(f"progress: {done}/{total} walk-forward runs (model x ticker) done")

    def run_batches() -> None:
        """Each batch not kept yet: the single-series batches in ticker order, each pooled model when it ends."""
        nonlocal features
        todo = [
            (f"single-{b:05d}", batch)
            for b, batch in enumerate(ticker_batches(tickers, settings.ticker_batch) if single else [])
            if f"single-{b:05d}" not in kept
        ]
        places = [i for i, m in enumerate(pooled) if f"pooled-{m.name}" not in kept]
        if not todo and not places:
            return
        scheduler = settings.scheduler or None
        shared = scheduler or (settings.workers > 1 and total >= 2)
        with dask_client(scheduler, settings.workers) if shared else nullcontext() as client:
            # The pooled models start first, each one task on the cluster beside the single-series tasks: this
            # process only takes their results (it used to fit them in a thread of its own, a third busy process
            # on the workers' cores). Their rows do not depend on where or when they are trained.
            # a model's rows are kept where they are made: on the local cluster, by its worker (this process never
            # holds them, gigabytes at 500 tickers); a cluster named by address may not share this disk
            started = PooledRuns(
                [pooled[i] for i in places],
                returns,
                wf,
                settings.forecast_start,
                features,
                client,
                then=partial(keep_pooled, checkpoint, columns, tuple((f"pooled-{pooled[i].name}", i) for i in places)),
                then_on_workers=scheduler is None,
            )
            if client is not None:
                features = None  # only the pooled models read them, and the cluster has them now
                release_freed_memory()  # the features and the panels cut from them: gigabytes at 500 tickers

            def take_pooled(kept: tuple[BatchPart, dict[str, str | None], dict[str, pd.DataFrame]]) -> None:
                take(kept)
                progress(0, total)  # the runs so far are summary.runs

            for name, batch in todo:
                rows = returns[returns["ticker"].isin(batch)]
                run = run_panel(
                    single,
                    rows,
                    wf,
                    start=settings.forecast_start,
                    progress=progress,
                    client=client,
                    allow_empty=True,
                )
                take(keep_batch(checkpoint, columns, name, 0, run))
                del run
                release_freed_memory()  # the batch's rows, and the buffers they were written through
                # a pooled model that has ended leaves the cluster now, not at the end of the step
                for _, pooled_kept in started.finished():
                    take_pooled(pooled_kept)
            # each pooled model's rows are a batch of their own: this process holds one model's at a time
            for _, pooled_kept in started.runs():
                take_pooled(pooled_kept)

    run_batches()
    if summary.first_asof is None:  # raised before anything is written
        raise ValueError("no ticker has enough history for one walk-forward fold; lower train_window or start earlier")
    written = warehouse.replace_tables_from_files(staged)
    rows = written["ml.base_forecasts"]
    n_fits = fit_store.store(warehouse, summary.fits, "walk_forward", context.run_id)
    imp = summary.importances() if summary.importances_parts else empty_importances()
    n_imp = warehouse.replace_table("marts.feature_importances", imp[IMPORTANCE_COLUMNS])
    checkpoint.remove()  # everything it kept is written
    yield dg.MaterializeResult(asset_key=["ml", "base_forecasts"], metadata=summary.metadata(models, rows, n_fits))
    yield dg.MaterializeResult(
        asset_key=["ml", "fit_diagnostics"],
        metadata={"dagster/row_count": written["ml.fit_diagnostics"], "mode": "walk_forward"},
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
            "top_features": dg.MetadataValue.md(top.round(4).reset_index().to_markdown(index=False))
            if top is not None
            else "",
        },
    )


@dataclass
class _Summary:
    """What the walk-forward's batches add up to, once their forecasts have gone to disk: the last fit
    of each (model, ticker), the work per model, the feature importances and the metadata's figures."""

    fits: dict[tuple[str, str], FoldFit] = field(default_factory=dict)
    stats: dict[str, ModelStats] = field(default_factory=dict)
    importances_parts: list[tuple[int, pd.DataFrame]] = field(default_factory=list)
    first_asof: pd.Timestamp | None = None
    last_asof: pd.Timestamp | None = None
    not_converged: int = 0
    runs: int = 0  # (model, ticker) runs and pooled models done in earlier batches

    def merge(self, part: BatchPart) -> None:
        """Take one batch's part."""
        self.fits.update(part.fits)
        for name, s in part.stats.items():
            seen = self.stats.get(name, ModelStats(0, 0, 0.0))
            self.stats[name] = ModelStats(seen.fits + s.fits, seen.failed + s.failed, seen.seconds + s.seconds)
        if part.importances is not None:
            self.importances_parts.append((part.place, part.importances))
        if part.first_asof is not None:
            self.first_asof = part.first_asof if self.first_asof is None else min(self.first_asof, part.first_asof)
            self.last_asof = part.last_asof if self.last_asof is None else max(self.last_asof, part.last_asof)
        self.not_converged += part.not_converged
        self.runs += part.runs

    def importances(self) -> pd.DataFrame:
        return pd.concat([part for _, part in sorted(self.importances_parts, key=lambda p: p[0])], ignore_index=True)

    def metadata(self, models: list[Model], rows: int, n_fits: int) -> dict:
        return {
            "dagster/row_count": rows,
            "mode": "walk_forward",
            "models": ", ".join(m.name for m in models),
            "first_asof": str(pd.Timestamp(self.first_asof).date()),
            "last_asof": str(pd.Timestamp(self.last_asof).date()),
            "fits_stored": n_fits,
            "fits_not_converged": self.not_converged,
            **{f"fits/{name}": s.fits for name, s in self.stats.items()},
            **{f"failed_fits/{name}": s.failed for name, s in self.stats.items() if s.failed},
            **{f"seconds/{name}": round(s.seconds, 2) for name, s in self.stats.items()},
        }


def incremental(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, models: list[Model]
) -> Results:
    """The daily refresh: the sessions not yet forecast, with the current fits."""
    stored = fit_store.current(warehouse, [m.name for m in models])
    # extending stored fits reads from the earliest of their samples on (a fit forecasts from its sample's
    # start): the refresh's reads stay the same size however long the history grows
    since = min((f.train_start for f in stored.values()), default=None)
    returns, features = model_inputs(warehouse, settings, models, since)
    if _can_extend(context, warehouse, "incremental", models, stored, returns):
        yield from extend_forecasts(context, warehouse, settings, stored, returns, features, _pooled(models))
        return
    # the walk-forward starts from the whole history
    inputs = model_inputs(warehouse, settings, models) if since is not None else (returns, features)
    yield from walk_forward(context, warehouse, settings, models, inputs)


def retrain(
    context: dg.AssetExecutionContext, warehouse: Warehouse, settings: PmxSettings, models: list[Model]
) -> Results:
    """The weekly retrain: every model refitted on the latest window and stored, then the refresh's extension."""
    stored = fit_store.current(warehouse, [m.name for m in models])
    returns, features = model_inputs(warehouse, settings, models)
    refits = refit_latest(
        models,
        returns,
        walk_forward_config(settings),
        features,
        workers=settings.workers,
        scheduler=settings.scheduler or None,
    )
    fit_store.store(warehouse, refits, "retrain", context.run_id)
    diagnostics = fit_store.store_diagnostics(warehouse, refits, _pooled(models))
    stored.update(refits)
    context.log.info(f"retrain: {len(refits)} fits on the window ending {max(f.train_end for f in refits.values())}")
    if _can_extend(context, warehouse, "retrain", models, stored, returns):
        yield from extend_forecasts(
            context,
            warehouse,
            settings,
            stored,
            returns,
            features,
            _pooled(models),
            {"mode": "retrain", "rows_added": diagnostics},
        )
        return
    yield from walk_forward(context, warehouse, settings, models, (returns, features))


#: What ``base_forecasts`` runs in each mode of :class:`~dagster_pmx.defs.forecasting.assets.ForecastRun`.
MODE_RUNS: dict[str, Callable[[dg.AssetExecutionContext, Warehouse, PmxSettings, list[Model]], Results]] = {
    "walk_forward": walk_forward,
    "incremental": incremental,
    "retrain": retrain,
}
MODES = tuple(MODE_RUNS)


def staged_columns(pooled: set[str]) -> dict[str, str]:
    """How the walk-forward's batches are written (:func:`~dagster_pmx.staging.stage`'s ``columns``): the
    forecasts with their ``fit_id``, the diagnostics in ``ml.fit_diagnostics``' columns and types, the id first.
    DuckDB builds the ids as it writes (:func:`~dagster_pmx.defs.forecasting.fits.fit_id_sql`); the types keep
    a batch without diagnostics the table's columns (it is the one written where every batch has none)."""
    fit_id = fit_store.fit_id_sql(pooled)
    diagnostics = ", ".join(
        f"{fit_id} as fit_id" if c.name == "fit_id" else f"cast({c.name} as {c.type}) as {c.name}"
        for c in schemas.FIT_DIAGNOSTICS.columns
    )
    return {"ml.base_forecasts": f"*, {fit_id} as fit_id", "ml.fit_diagnostics": diagnostics}


def _pooled(models: list[Model]) -> set[str]:
    return {m.name for m in models if isinstance(m, PanelForecaster)}


def _can_extend(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    mode: str,
    models: list[Model],
    stored: dict[tuple[str, str], FoldFit],
    returns: pd.DataFrame,
) -> bool:
    """Whether every (model, ticker) has a stored fit and there are forecasts to extend; if not, says why."""
    pooled = _pooled(models)
    needed = {(m.name, POOLED) for m in models if m.name in pooled}
    needed |= {(m.name, t) for m in models if m.name not in pooled for t in returns["ticker"].unique()}
    if needed <= set(stored) and warehouse.has("ml.base_forecasts"):
        return True
    context.log.warning(f"{mode}: no stored fit for {sorted(needed - set(stored))[:5]}: walking forward")
    return False


def extend_forecasts(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    settings: PmxSettings,
    stored: dict[tuple[str, str], FoldFit],
    returns: pd.DataFrame,
    features: pd.DataFrame | None,
    pooled: set[str],
    fit_diagnostics: dict | None = None,
) -> Results:
    """The daily refresh's forecasting: the sessions not yet forecast, with the current fits;
    then the target date of earlier rows whose target session has now arrived. ``fit_diagnostics``:
    the metadata of ``ml.fit_diagnostics`` when the caller added rows to it (the retrain)."""
    last, columns = reads.forecast_state(warehouse)
    after = {(r.model, r.ticker): r.last for r in last.itertuples()}
    for model in pooled:
        own = last.loc[last["model"] == model, "last"]
        if len(own):
            after[(model, POOLED)] = own.max()
    new = forecast_from_fits(
        stored,
        returns,
        after,
        DEFAULT_HORIZONS,
        features,
        workers=settings.workers,
        scheduler=settings.scheduler or None,
    )
    new["fit_id"] = fit_store.fit_ids(new, pooled) if len(new) else pd.Series(dtype="string")
    with warehouse.connect() as con:
        con.register("incoming", new[columns] if len(new) else new.reindex(columns=columns))

        def write() -> int:
            # a rerun of the same day replaces its own rows: identical rows, never duplicates
            con.execute(
                "delete from ml.base_forecasts f using incoming i where f.model = i.model "
                "and f.ticker = i.ticker and f.asof_date = i.asof_date and f.horizon = i.horizon"
            )
            con.execute("insert into ml.base_forecasts by name select * from incoming")
            # read inside the transaction, in SQL: the rows still without a target include those just inserted
            pending = con.execute(
                "select model, ticker, asof_date, horizon from ml.base_forecasts where target_date is null"
            ).df()
            arrived = arrived_targets(pending, returns)
            con.register("arrived", arrived)
            con.execute(
                "update ml.base_forecasts f set target_date = a.target_date from arrived a where f.model = a.model "
                "and f.ticker = a.ticker and f.asof_date = a.asof_date and f.horizon = a.horizon"
            )
            return len(arrived)

        arrived = in_transaction(con, write)  # one snapshot: readers never see forecasts without their targets
        total = con.execute("select count(*) from ml.base_forecasts").fetchall()[0][0]
    context.log.info(f"incremental: {len(new)} new forecast rows from {len(stored)} stored fits")
    yield dg.MaterializeResult(
        asset_key=["ml", "base_forecasts"],
        metadata={
            "dagster/row_count": int(total),
            "mode": "incremental",
            "rows_added": len(new),
            "new_origins": ", ".join(sorted({str(d)[:10] for d in new["asof_date"]})) if len(new) else "none",
            "fits_used": len(stored),
            "targets_arrived": arrived,
        },
    )
    yield dg.MaterializeResult(asset_key=["ml", "fit_diagnostics"], metadata=fit_diagnostics or {"mode": "unchanged"})
    yield dg.MaterializeResult(asset_key=["marts", "feature_importances"], metadata={"mode": "unchanged"})


def arrived_targets(pending: pd.DataFrame, returns: pd.DataFrame) -> pd.DataFrame:
    """The ``pending`` rows (``model, ticker, asof_date, horizon``) whose target session is now in
    ``returns``, with that session as ``target_date``."""
    sessions = returns.groupby("ticker")["date"].apply(lambda d: pd.DatetimeIndex(d))
    pending["target_date"] = pd.NaT
    for ticker, idx in pending.groupby("ticker").groups.items():
        if ticker in sessions.index:
            rows = pending.loc[idx]
            at = sessions[ticker].get_indexer(rows["asof_date"])  # -1: an origin before the rows read
            pos = at + rows["horizon"].to_numpy()
            ok = (at >= 0) & (pos < len(sessions[ticker]))
            pending.loc[rows.index[ok], "target_date"] = sessions[ticker][pos[ok]]
    return pending.dropna(subset=["target_date"])


def empty_importances() -> pd.DataFrame:
    """marts.feature_importances with no rows but its column types."""
    return empty_frame(schemas.FEATURE_IMPORTANCES)
