"""The stored fits' side of the walk-forward: forecasts from them without refitting (the daily
refresh) and new fits on the latest window (the weekly retrain).

A stored fit is a :class:`~python_models.evaluation.walk_forward.FoldFit`, keyed ``(model, ticker)``
as :func:`~python_models.evaluation.panel.run_panel` keys them (ticker :data:`POOLED` for a pooled
model).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

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


def forecast_from_fits(
    fits: dict[tuple[str, str], FoldFit],
    returns: pd.DataFrame,
    after: dict[tuple[str, str], pd.Timestamp],
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    features: pd.DataFrame | None = None,
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

    Returns
    -------
    pandas.DataFrame
        :func:`run_panel`'s columns (``model`` and ``ticker`` first).
    """
    series = series_by_ticker(returns)
    panel = None
    frames = []
    for (model, ticker), stored in sorted(fits.items()):
        if (model, ticker) not in after:  # never walked forward: nothing to extend
            continue
        last = pd.Timestamp(after[(model, ticker)])
        if ticker != POOLED:
            parts = _extend_series(stored, series.get(ticker), ticker, last, horizons)
        else:
            if panel is None:  # built once, for the first pooled model that needs it
                panel = validate_panel(pooled_panel(returns, features))
            parts = _extend_pooled(stored, panel, series, last, horizons)
        for frame in parts:
            frame.insert(0, "model", model)
            frame["train_start"], frame["train_end"], frame["converged"] = (
                stored.train_start,
                stored.train_end,
                stored.converged,
            )
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["model", "ticker", *FORECAST_COLUMNS])
    return pd.concat(frames, ignore_index=True)


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
) -> dict[tuple[str, str], FoldFit]:
    """Fit every model on the latest window, as the next walk-forward fold would: the
    ``train_window`` sessions ending ``config.gap`` sessions before the last one (purge and
    embargo kept, so the fit's labels cannot overlap the origins it will forecast from).

    A model that cannot be fitted on a window is left out (with a warning): its stored fit
    stays current. Keys as :attr:`PanelRun.fits`.
    """
    out: dict[tuple[str, str], FoldFit] = {}
    single = [f for f in forecasters if not isinstance(f, PanelForecaster)]
    for ticker, r in series_by_ticker(returns).items():
        bounds = config.latest_window(len(r))
        if bounds is None:
            continue
        sample = r.iloc[bounds[0] : bounds[1]]
        for forecaster in single:
            with threadpool_limits(limits=1):
                fit = fit_or_none(forecaster)(sample)
            if fit is not None:
                out[(forecaster.name, ticker)] = FoldFit(fit, sample.index[0], sample.index[-1], converged(fit))
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
