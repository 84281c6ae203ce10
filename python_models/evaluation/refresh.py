"""The stored fits' side of the walk-forward: forecasts from them without refitting (the daily
refresh) and new fits on the latest window (the weekly retrain).

A stored fit is a :class:`~python_models.evaluation.walk_forward.FoldFit`, keyed ``(model, ticker)``
as :func:`~python_models.evaluation.panel.run_panel` keys them (ticker :data:`POOLED` for a pooled
model).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from python_models.evaluation.cluster import fan_out
from python_models.evaluation.panel import pooled_panel, series_by_ticker
from python_models.evaluation.walk_forward import (
    DEFAULT_HORIZONS,
    FORECAST_COLUMNS,
    POOLED,
    FoldFit,
    WalkForwardConfig,
    converged,
    fit_or_none,
    target_dates,
)
from python_models.forecasters.base import FitResult, Forecaster, PanelFitResult, PanelForecaster, validate_panel

#: The fewest stored single-series fits a refresh starts a local cluster for: extending one fit
#: takes milliseconds and starting the cluster seconds, so a small universe is extended here.
#: A configured scheduler is always used.
EXTEND_LOCAL_CLUSTER_FROM = 2000


def forecast_from_fits(
    fits: dict[tuple[str, str], FoldFit],
    returns: pd.DataFrame,
    after: dict[tuple[str, str], pd.Timestamp],
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    features: pd.DataFrame | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    client: Any = None,
) -> pd.DataFrame:
    """Forecasts from the origins after ``after[(model, ticker)]`` with stored fits, refitting nothing.

    What the daily refresh runs: each stored fit forecasts the sessions its run has not forecast
    yet, each from the returns of the fit's sample start up to that origin (so a refresh reads a
    bounded history, however long the series). While those origins lie in the fold the fit was
    made for, the rows are the walk-forward's own.

    Parameters
    ----------
    fits : dict
        ``(model, ticker) -> FoldFit``; ticker :data:`POOLED` for a pooled model.
    returns : pandas.DataFrame
        Long frame (``ticker``, ``date``, ``log_return``) covering each fit's sample and the
        new origins.
    after : dict
        ``(model, ticker) -> last origin already forecast``; a pooled model's key carries
        the last origin it forecast for any ticker.
    horizons : sequence of int
    features : pandas.DataFrame, optional
        The pooled models' feature rows, as :func:`run_panel` takes them.
    workers, scheduler, client
        Where the single-series fits are extended, as :func:`run_panel` takes them; a local
        cluster only from :data:`EXTEND_LOCAL_CLUSTER_FROM` fits on.

    Returns
    -------
    pandas.DataFrame
        :func:`run_panel`'s columns (``model`` and ``ticker`` first).
    """
    series = series_by_ticker(returns)
    keys = [key for key in sorted(fits) if key in after]  # a key never walked forward: nothing to extend
    single = [(model, ticker) for model, ticker in keys if ticker != POOLED]
    tasks = []
    for model, ticker in single:
        stored, r = fits[(model, ticker)], series.get(ticker)
        # the worker gets the fit's sample on, which is all the forecasts read
        tasks.append(
            (stored, None if r is None else r[r.index >= stored.train_start], ticker, after[(model, ticker)], horizons)
        )
    names = [f"extend-{model}-{ticker}" for model, ticker in single]
    extended = fan_out(
        _extend_task,
        tasks,
        names,
        workers=workers,
        scheduler=scheduler,
        client=client,
        local_cluster_from=EXTEND_LOCAL_CLUSTER_FROM,
    )
    parts_by_key = dict(zip(single, extended, strict=True))
    panel = None
    frames, runs = [], []
    for model, ticker in keys:
        stored = fits[(model, ticker)]
        if ticker != POOLED:
            parts = parts_by_key[(model, ticker)]
        else:
            if panel is None:  # built once, for the first pooled model that needs it
                panel = validate_panel(pooled_panel(returns, features))
            parts = _extend_pooled(stored, panel, series, pd.Timestamp(after[(model, ticker)]), horizons)
        frames += parts
        runs += [(model, stored)] * len(parts)
    if not frames:
        return pd.DataFrame(columns=["model", "ticker", *FORECAST_COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    # each run's columns once over the whole frame: a column inserted into each small frame costs
    # more than its forecasts (pandas copies the column index at every insert)
    sizes = [len(frame) for frame in frames]
    out.insert(0, "model", np.repeat(np.array([model for model, _ in runs], dtype=object), sizes))
    for column in ("train_start", "train_end", "converged"):
        out[column] = pd.Series([getattr(stored, column) for _, stored in runs]).repeat(sizes).to_numpy()
    return out


def _extend_task(args: tuple[FoldFit, pd.Series | None, str, Any, Sequence[int]]) -> list[pd.DataFrame]:
    stored, r, ticker, last, horizons = args
    return _extend_series(stored, r, ticker, pd.Timestamp(last), horizons)


def _extend_series(
    stored: FoldFit, r: pd.Series | None, ticker: str, last: pd.Timestamp, horizons: Sequence[int]
) -> list[pd.DataFrame]:
    """A single-series fit's forecasts from the origins of ``r`` after ``last`` (none without ``r``)."""
    if r is None:
        return []
    origins = r.index[r.index > last]
    if origins.empty:
        return []
    fit = cast(FitResult, stored.fit)  # keyed by a ticker: a single-series model's fit
    # from the fit's sample on, as run_walk_forward forecasts: the same rows
    frame = fit.forecast(r[r.index >= stored.train_start], origins, horizons).to_frame()
    frame.insert(0, "ticker", ticker)
    frame["target_date"] = target_dates(r.index, frame["asof_date"], frame["horizon"])
    return [frame]


def _extend_pooled(
    stored: FoldFit, panel: pd.DataFrame, series: dict[str, pd.Series], last: pd.Timestamp, horizons: Sequence[int]
) -> list[pd.DataFrame]:
    """A pooled fit's forecasts, per ticker, from the panel's sessions after ``last``."""
    dates = pd.DatetimeIndex(panel["date"].unique())
    origins = dates[dates > last]
    if origins.empty:
        return []
    fit = cast(PanelFitResult, stored.fit)  # keyed by POOLED: a pooled model's fit
    parts = []
    for name, fc in fit.forecast(panel, origins, horizons).items():
        frame = fc.to_frame()
        frame.insert(0, "ticker", name)
        frame["target_date"] = target_dates(series[name].index, frame["asof_date"], frame["horizon"])
        finite = np.isfinite(frame["y_pred"].to_numpy(float)) & np.isfinite(frame["y_std"].to_numpy(float))
        parts.append(frame[finite])
    return parts


def refit_latest(
    forecasters: Sequence[Forecaster | PanelForecaster],
    returns: pd.DataFrame,
    config: WalkForwardConfig,
    features: pd.DataFrame | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    client: Any = None,
) -> dict[tuple[str, str], FoldFit]:
    """Fit every model on the latest window, as the next walk-forward fold would: the
    ``train_window`` sessions ending ``config.gap`` sessions before the last one (purge and
    embargo kept, so the fit's labels cannot overlap the origins it will forecast from).

    A model that cannot be fitted on a window is left out (with a warning): its stored fit
    stays current. Keys as :attr:`PanelRun.fits`. The single-series fits run where
    :func:`run_panel`'s do (``workers``, ``scheduler``, ``client``); the pooled ones here.
    """
    single = [f for f in forecasters if not isinstance(f, PanelForecaster)]
    tasks = []
    for ticker, r in series_by_ticker(returns).items():
        bounds = config.latest_window(len(r))
        if bounds is not None:
            tasks += [(forecaster, ticker, r.iloc[bounds[0] : bounds[1]]) for forecaster in single]
    names = [f"refit-{forecaster.name}-{ticker}" for forecaster, ticker, _ in tasks]
    fitted = fan_out(_refit_task, tasks, names, workers=workers, scheduler=scheduler, client=client)
    out: dict[tuple[str, str], FoldFit] = {
        (forecaster.name, ticker): fit
        for (forecaster, ticker, _), fit in zip(tasks, fitted, strict=True)
        if fit is not None
    }
    pooled = [f for f in forecasters if isinstance(f, PanelForecaster)]
    if pooled:
        panel = validate_panel(pooled_panel(returns, features if any(f.needs_features for f in pooled) else None))
        dates = pd.DatetimeIndex(panel["date"].unique())
        bounds = config.latest_window(len(dates))
        if bounds is not None:
            lo, hi = dates[bounds[0]], dates[bounds[1] - 1]
            train = panel[(panel["date"] >= lo) & (panel["date"] <= hi)]
            for model in pooled:
                try:
                    pooled_fit = model.fit(train)
                except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
                    warnings.warn(f"{model.name}: refit failed ({exc})", RuntimeWarning, stacklevel=2)
                    continue
                out[(model.name, POOLED)] = FoldFit(pooled_fit, lo, hi, converged(pooled_fit))
    return out


def _refit_task(args: tuple[Forecaster, str, pd.Series]) -> FoldFit | None:
    """One single-series model fitted on one ticker's latest window (None where it cannot be)."""
    forecaster, _, sample = args
    # Small matrices: multithreaded BLAS only spins (as in run_panel's workers).
    with threadpool_limits(limits=1):
        fit = fit_or_none(forecaster)(sample)
    return None if fit is None else FoldFit(fit, sample.index[0], sample.index[-1], converged(fit))
