"""Walk-forward validation: rolling training windows, a refit cadence, purge and embargo.

Fold ``k`` forecasts from origins ``[s_k, s_k + refit_every)``. Its model is fitted on the
``train_window`` returns that end ``purge + embargo`` sessions before ``s_k``; between
refits the parameters stay fixed while each origin's forecast sees returns up to that
origin's close and no later. ``purge`` defaults to the longest horizon, so no training
label can overlap a test window even for models trained on multi-session targets.

This module holds the folds and the run of one model on one series; :mod:`.panel` runs every
model on every ticker (and the pooled models across them), :mod:`.refresh` forecasts from and
refits the stored fits.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from python_models.forecasters.base import (
    DEFAULT_HORIZONS,
    FitResult,
    Forecaster,
    PanelFitResult,
    validate_horizons,
    validate_returns,
)

__all__ = [
    "DIAGNOSTIC_COLUMNS",
    "FORECAST_COLUMNS",
    "POOLED",
    "Fold",
    "FoldFit",
    "WalkForwardConfig",
    "diagnostics_frame",
    "fit_or_none",
    "run_walk_forward",
    "target_dates",
    "walk_forward_folds",
]

#: The ticker a pooled model's fit is stored under (one fit for every ticker).
POOLED = "*"

#: Columns of :func:`run_walk_forward`'s frame (the panel runners put ``model`` and ``ticker`` first).
FORECAST_COLUMNS = [
    "asof_date",
    "horizon",
    "y_pred",
    "y_lower",
    "y_upper",
    "y_std",
    "confidence",
    "target_date",
    "train_start",
    "train_end",
    "converged",
]

#: Columns of a walk-forward's fit diagnostics (``attrs["fit_diagnostics"]``): one row per fit and
#: diagnostic the model reports (the panel runners put ``model`` and ``ticker`` first).
DIAGNOSTIC_COLUMNS = ["train_start", "train_end", "diagnostic", "value"]


def diagnostics_frame(fits: Iterable[tuple[pd.Timestamp, pd.Timestamp, dict[str, float]]]) -> pd.DataFrame:
    """Long frame of fits' diagnostics: ``(train_start, train_end, diagnostics)`` per fit, one row per
    finite numeric diagnostic (a NaN says the fit did not measure it, and is left out)."""
    rows = [
        (start, end, name, float(value))
        for start, end, diagnostics in fits
        for name, value in diagnostics.items()
        if isinstance(value, int | float | np.number) and np.isfinite(value)
    ]
    frame = pd.DataFrame(rows, columns=DIAGNOSTIC_COLUMNS)
    return frame.astype({"train_start": "datetime64[ns]", "train_end": "datetime64[ns]", "value": "float64"})


@dataclass(frozen=True)
class WalkForwardConfig:
    """Settings of the walk-forward harness.

    Parameters
    ----------
    horizons : tuple of int
        Forecast horizons in sessions.
    train_window : int
        Sessions in each (rolling) training window.
    refit_every : int
        Sessions between refits; origins in between reuse the latest fit.
    purge : int or None
        Sessions dropped between the end of training and the first test origin;
        ``None`` means the longest horizon.
    embargo : int
        Further sessions dropped after the purge.
    expanding : bool
        Train on all history up to the purge instead of a rolling window.
    """

    horizons: tuple[int, ...] = DEFAULT_HORIZONS
    train_window: int = 756
    refit_every: int = 63
    purge: int | None = None
    embargo: int = 5
    expanding: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizons", validate_horizons(self.horizons))
        if self.train_window < 100:
            raise ValueError(f"train_window must be at least 100 sessions, got {self.train_window}")
        if self.refit_every < 1:
            raise ValueError(f"refit_every must be positive, got {self.refit_every}")
        if self.embargo < 0 or (self.purge is not None and self.purge < max(self.horizons)):
            raise ValueError("purge must be >= the longest horizon and embargo >= 0")

    @property
    def gap(self) -> int:
        """Sessions between the last training return and the first test origin."""
        return (max(self.horizons) if self.purge is None else self.purge) + self.embargo

    def latest_window(self, n: int) -> tuple[int, int] | None:
        """Positions ``(start, end)`` (end exclusive) of the window the next fold would fit on, for
        ``n`` sessions of history: ending ``gap`` sessions before the last one; None if it does not fit."""
        end = n - self.gap
        start = 0 if self.expanding else end - self.train_window
        return (start, end) if start >= 0 and end > start else None


@dataclass(frozen=True)
class Fold:
    """Positions (into the return series) of one walk-forward fold; ends are exclusive."""

    train_start: int
    train_end: int
    test_start: int
    test_end: int


@dataclass(frozen=True)
class FoldFit:
    """A fitted model and the sample it was fitted on (the harness keeps each run's last one:
    the fit the daily refresh forecasts new origins with)."""

    fit: FitResult | PanelFitResult
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    converged: bool


def walk_forward_folds(n: int, first_test: int, config: WalkForwardConfig) -> Iterator[Fold]:
    """Yield folds covering test origins ``first_test .. n - 1``.

    The first test origin is moved later if the history before it cannot hold a full
    training window plus the gap.
    """
    start = max(first_test, config.train_window + config.gap)
    for s in range(start, n, config.refit_every):
        train_end = s - config.gap
        train_start = 0 if config.expanding else train_end - config.train_window
        yield Fold(train_start, train_end, s, min(s + config.refit_every, n))


def converged(fit: FitResult | PanelFitResult) -> bool:
    """Whether a fit's estimation converged (a model without the diagnostic always does)."""
    return bool(fit.diagnostics.get("converged", 1.0))


def run_walk_forward(
    forecaster: Forecaster,
    returns: pd.Series,
    config: WalkForwardConfig,
    start: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Out-of-sample forecasts of one model on one return series.

    Parameters
    ----------
    forecaster : Forecaster
        Model specification, fitted afresh on every fold (every ``forecaster.refit_every``
        sessions when it sets one, else ``config.refit_every``).
    returns : pandas.Series
        Daily log returns indexed by session date.
    config : WalkForwardConfig
        Windows, cadence, purge and embargo.
    start : date-like, optional
        First forecast origin wanted (earlier if omitted: as soon as a window fits).

    Returns
    -------
    pandas.DataFrame
        One row per (asof_date, horizon): ``y_pred``, ``y_lower``, ``y_upper``,
        ``y_std``, ``confidence`` (see :meth:`ReturnForecast.to_frame`),
        ``target_date`` (the session ``h`` rows later, NaT while it lies beyond the
        data), ``train_start``/``train_end`` (the fit's sample) and ``converged``.
        ``attrs["failed_fits"]`` counts the windows the model could not be fitted on,
        ``attrs["last_fit"]`` holds the last :class:`FoldFit` (absent when no fold was fitted) and
        ``attrs["fit_diagnostics"]`` every fit's diagnostics (:func:`diagnostics_frame`).
    """
    r = validate_returns(returns)
    dates = r.index
    first = 0 if start is None else int(dates.searchsorted(pd.Timestamp(start)))
    own_cadence = getattr(forecaster, "refit_every", None)  # a model may refit less often than the harness default
    if own_cadence:
        config = replace(config, refit_every=own_cadence)
    folds = list(walk_forward_folds(len(r), first, config))
    fits = _fold_fits(forecaster, [r.iloc[fold.train_start : fold.train_end] for fold in folds])
    frames, failed, last, diagnostics = [], 0, None, []
    for fold, fit in zip(folds, fits, strict=True):
        if fit is None:  # the model cannot be estimated on this window: no forecasts for its origins
            failed += 1
            continue
        diagnostics.append((dates[fold.train_start], dates[fold.train_end - 1], fit.diagnostics))
        origins = dates[fold.test_start : fold.test_end]
        # from the fit's own sample on: a model's filter (ARMA state, GARCH variance, HMM regime) starts
        # where its estimation did, so a forecast's cost and value do not depend on older history
        frame = fit.forecast(r.iloc[fold.train_start : fold.test_end], origins, config.horizons).to_frame()
        last = FoldFit(fit, dates[fold.train_start], dates[fold.train_end - 1], converged(fit))
        frame["train_start"] = last.train_start
        frame["train_end"] = last.train_end
        frame["converged"] = last.converged
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out = finite_forecasts(out, forecaster.name).reset_index(drop=True)
    out.attrs["failed_fits"] = failed
    out.attrs["last_fit"] = last
    out.attrs["fit_diagnostics"] = diagnostics_frame(diagnostics)
    out["target_date"] = target_dates(dates, out["asof_date"], out["horizon"])
    return out


def finite_forecasts(out: pd.DataFrame, model: str) -> pd.DataFrame:
    """``out`` without its forecast rows that are not finite, with a warning that counts them.

    A forecast that overflowed is no forecast: nothing downstream can weigh it. Row by row, so that a
    fold's later origins never decide whether its earlier ones stay (point in time). Both walk-forwards
    (one series, the pooled panel) drop them here."""
    finite = np.isfinite(out[["y_pred", "y_std", "y_lower", "y_upper"]].to_numpy(dtype=float)).all(axis=1)
    if finite.all():
        return out  # a boolean selection copies even when it keeps every row
    warnings.warn(f"{model}: {int((~finite).sum())} forecasts were not finite and are left out", RuntimeWarning, 3)
    return out[finite]


def _fold_fits(forecaster: Forecaster, windows: Sequence[pd.Series]) -> Iterable[FitResult | None]:
    """One fit per training window (None where the model cannot be fitted on it)."""
    # models with a batched fit (SSA) estimate every fold at once; the fits are the same
    fit_many: Callable[[Sequence[pd.Series]], list[FitResult]] | None = getattr(forecaster, "fit_many", None)
    if fit_many is not None:
        try:
            return fit_many(windows)
        except (ValueError, RuntimeError, np.linalg.LinAlgError):
            pass  # one bad window: fit them one by one below
    return map(fit_or_none(forecaster), windows)


def target_dates(dates: pd.DatetimeIndex, asof: pd.Series, horizon: pd.Series) -> np.ndarray:
    """The session ``horizon`` rows of ``dates`` after each ``asof`` (NaT beyond the data)."""
    pos = dates.get_indexer(asof) + horizon.to_numpy()
    target = np.full(len(asof), np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = pos < len(dates)
    target[ok] = dates.to_numpy()[pos[ok]]
    return target


def fit_or_none(forecaster: Forecaster) -> Callable[[pd.Series], FitResult | None]:
    """``forecaster.fit`` that returns None, with a warning, when a window cannot be fitted
    (a constant stretch, a degenerate likelihood): one bad window must not stop a panel."""

    def fit(window: pd.Series) -> FitResult | None:
        try:
            return forecaster.fit(window)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            warnings.warn(
                f"{forecaster.name}: fit on {window.index[0].date()}..{window.index[-1].date()} failed ({exc}); "
                "its test origins get no forecast",
                RuntimeWarning,
                stacklevel=2,
            )
            return None

    return fit
