"""The forecaster interface shared by every model.

A :class:`Forecaster` is a specification; :meth:`Forecaster.fit` estimates it on a
training sample of daily log returns and returns a :class:`FitResult`, which holds the
parameters and diagnostics and produces :class:`ReturnForecast` objects from any set of
forecast origins without refitting (the parameters stay fixed, the information set grows).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

#: Central coverage of every prediction interval written by pmx.
INTERVAL_LEVEL = 0.90

#: Forecast and target horizons in sessions; dbt receives them as var target_horizons. Here, not in the
#: walk-forward harness, because the models default to them and the harness imports the models' interface.
DEFAULT_HORIZONS: tuple[int, ...] = (1, 5, 21, 63)


def validate_returns(returns: pd.Series, min_obs: int = 30) -> pd.Series:
    """Check a series of daily log returns before a model sees it.

    Parameters
    ----------
    returns : pandas.Series
        Daily log returns indexed by session date, oldest first.
    min_obs : int
        Fewest observations a fit may use.

    Returns
    -------
    pandas.Series
        The same series as float64.

    Raises
    ------
    TypeError
        If ``returns`` is not a Series.
    ValueError
        If it is too short, unsorted, duplicated, or holds NaN or infinite values.
    """
    if not isinstance(returns, pd.Series):
        raise TypeError(f"returns must be a pandas Series, got {type(returns).__name__}")
    if len(returns) < min_obs:
        raise ValueError(f"need at least {min_obs} returns, got {len(returns)}")
    if not returns.index.is_monotonic_increasing or returns.index.has_duplicates:
        raise ValueError("returns index must be strictly increasing (sorted, no duplicate sessions)")
    values = returns.to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError("returns contain NaN or infinite values; clean the input before fitting")
    return returns.astype(float)


def validate_horizons(horizons: Sequence[int]) -> tuple[int, ...]:
    """Return horizons as a sorted tuple of distinct positive ints, or raise ValueError."""
    hs = tuple(sorted({int(h) for h in horizons}))
    if not hs or hs[0] < 1:
        raise ValueError(f"horizons must be positive integers, got {list(horizons)}")
    return hs


def validate_fitted_horizons(horizons: Sequence[int], fitted: Collection[int]) -> tuple[int, ...]:
    """Horizons as :func:`validate_horizons` does, for a model fitted on ``fitted`` only
    (one output or error variance per horizon): raise ValueError for any other."""
    hs = validate_horizons(horizons)
    missing = sorted(set(hs) - set(fitted))
    if missing:
        raise ValueError(f"fitted for horizons {sorted(fitted)}; not for {missing}")
    return hs


@dataclass(frozen=True)
class ReturnForecast:
    """Forecasts of cumulative log returns over several horizons from several origins.

    Attributes
    ----------
    origins : pandas.Index
        Session dates at whose close each forecast is made (information up to and
        including that close).
    horizons : tuple of int
        Forecast horizons in sessions.
    mean, variance : numpy.ndarray
        Shape ``(len(origins), len(horizons))``: mean and variance of the log return
        summed over the next ``h`` sessions.
    """

    origins: pd.Index
    horizons: tuple[int, ...]
    mean: np.ndarray
    variance: np.ndarray

    def __post_init__(self) -> None:
        shape = (len(self.origins), len(self.horizons))
        if self.mean.shape != shape or self.variance.shape != shape:
            raise ValueError(f"mean and variance must have shape {shape}")

    def to_frame(self, level: float = INTERVAL_LEVEL) -> pd.DataFrame:
        """Long table of simple-return forecasts, one row per (origin, horizon).

        The cumulative log return is treated as normal, so the simple return
        ``exp(L) - 1`` is lognormal: ``y_pred`` is its mean, ``y_std`` its standard
        deviation, and ``y_lower``/``y_upper`` its central ``level`` interval.
        ``confidence`` is the predictive probability that the realised return has the
        sign of ``y_pred``.
        """
        m = self.mean
        v = np.maximum(self.variance, 0.0)
        s = np.sqrt(v)
        z = stats.norm.ppf(0.5 + level / 2.0)
        y_pred = np.expm1(m + v / 2.0)
        y_std = np.sqrt(np.expm1(v) * np.exp(2.0 * m + v))
        # P(exp(L) - 1 > 0) = P(L > 0); the sign of y_pred can differ from the sign of m
        # only by the v/2 convexity term, so confidence uses the lognormal itself.
        p_up = stats.norm.sf(0.0, loc=m, scale=np.where(s > 0, s, np.nan))
        confidence = np.where(y_pred >= 0, p_up, 1.0 - p_up)
        n_o, n_h = m.shape
        return pd.DataFrame(
            {
                "asof_date": np.repeat(np.asarray(self.origins), n_h),
                "horizon": np.tile(np.asarray(self.horizons, dtype=np.int64), n_o),
                "y_pred": y_pred.ravel(),
                "y_lower": np.expm1(m - z * s).ravel(),
                "y_upper": np.expm1(m + z * s).ravel(),
                "y_std": y_std.ravel(),
                "confidence": confidence.ravel(),
            }
        )


@dataclass
class FitResult(ABC):
    """Parameters and diagnostics of one fit; forecasts with those parameters fixed."""

    params: pd.Series
    diagnostics: dict[str, float] = field(default_factory=dict)

    @abstractmethod
    def forecast(self, returns: pd.Series, origins: pd.Index, horizons: Sequence[int]) -> ReturnForecast:
        """Forecast from each origin using ``returns`` only up to that origin.

        Parameters
        ----------
        returns : pandas.Series
            Daily log returns covering the training sample and every origin. Values
            after the last origin are never read.
        origins : pandas.Index
            Dates in ``returns.index`` to forecast from.
        horizons : sequence of int
            Horizons in sessions.
        """


class Forecaster(ABC):
    """A model specification. Subclasses set :attr:`name` and implement :meth:`fit`."""

    name: str = "forecaster"
    #: sessions between refits in the walk-forward harness where the model sets its own cadence
    refit_every: int | None = None

    @abstractmethod
    def fit(self, returns: pd.Series) -> FitResult:
        """Estimate the model on daily log returns (oldest first)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def check_origins(returns: pd.Series, origins: pd.Index) -> np.ndarray:
    """Positions of ``origins`` in ``returns.index``; raise if any is missing."""
    pos = returns.index.get_indexer(origins)
    if (pos < 0).any():
        missing = list(origins[pos < 0][:3])
        raise ValueError(f"forecast origins not found in the return series: {missing}")
    return pos


def validate_panel(panel: pd.DataFrame) -> pd.DataFrame:
    """Check a long panel (``ticker``, ``date``, ``log_return`` and any feature columns)
    before a pooled model sees it; return it sorted by (date, ticker) with ``date`` as
    datetime64. ``log_return`` may be NaN (a missing session); features may be NaN.

    Raises
    ------
    TypeError
        If ``panel`` is not a DataFrame.
    ValueError
        If a required column is missing, a (ticker, date) pair is repeated, or a numeric
        column holds an infinite value.
    """
    if not isinstance(panel, pd.DataFrame):
        raise TypeError(f"panel must be a pandas DataFrame, got {type(panel).__name__}")
    missing = {"ticker", "date", "log_return"} - set(panel.columns)
    if missing:
        raise ValueError(f"panel lacks columns {sorted(missing)}")
    if panel.duplicated(["ticker", "date"]).any():
        raise ValueError("panel repeats a (ticker, date) pair")
    # column by column: only a float can be infinite, and a float64 column is read without a copy
    # (select_dtypes and one 2-D array would copy the whole panel twice)
    floats = [c for c, dtype in panel.dtypes.items() if pd.api.types.is_float_dtype(dtype)]
    if any(np.isinf(panel[c].to_numpy(dtype=float, na_value=np.nan)).any() for c in floats):
        raise ValueError("panel holds infinite values; use NaN for a missing value")
    out = panel.assign(date=pd.to_datetime(panel["date"]))
    return out.sort_values(["date", "ticker"], kind="stable").reset_index(drop=True)


def by_ticker(panel: pd.DataFrame, tickers=None):
    """Yield ``(ticker, rows, returns)`` for each ticker of a validated panel (optionally only
    ``tickers``): its rows indexed by date, and its non-missing log returns."""
    p = panel if tickers is None else panel[panel["ticker"].isin(list(tickers))]
    for ticker, rows in p.groupby("ticker", sort=True):
        frame = rows.set_index(pd.DatetimeIndex(rows["date"]))
        yield ticker, frame, frame["log_return"].dropna()


@dataclass
class PanelFitResult(ABC):
    """One fit of a pooled model (all tickers at once); forecasts with its parameters fixed.

    ``importances``, where the model has them, is a frame with columns ``horizon``,
    ``feature``, ``gain`` (share of the total split gain) and ``splits``.
    """

    params: pd.Series
    diagnostics: dict[str, float] = field(default_factory=dict)
    importances: pd.DataFrame | None = None

    @abstractmethod
    def forecast(self, panel: pd.DataFrame, origins: pd.Index, horizons: Sequence[int]) -> dict[str, ReturnForecast]:
        """Forecast every ticker it can from each origin, using ``panel`` rows up to that
        origin only. Returns one :class:`ReturnForecast` per ticker (its own origins)."""


class PanelForecaster(ABC):
    """A pooled model: one fit across every ticker of a training window (see
    :func:`python_models.evaluation.panel.run_pooled`). Subclasses set :attr:`name`."""

    name: str = "panel_forecaster"
    refit_every: int | None = None
    #: whether it reads feature columns (from ``marts.features``) besides the returns
    needs_features: bool = False

    @abstractmethod
    def fit(self, panel: pd.DataFrame) -> PanelFitResult:
        """Estimate the model on a training panel (see :func:`validate_panel`)."""

    def panel_columns(self, available: Sequence[str]) -> list[str]:
        """The feature columns of ``available`` the model reads, besides ``ticker``, ``date`` and
        ``log_return``: on a cluster its task is sent a panel of those columns only (the same rows).
        All of them when it :attr:`needs_features`, none otherwise; a model that reads named columns
        says which."""
        return list(available) if self.needs_features else []

    def single_precision_columns(self, panel: pd.DataFrame) -> list[str]:
        """The float64 columns of ``panel`` the model reads only in single precision (its own first step casts
        them to float32), which its task may be sent as float32 with the same results: half the bytes. None
        by default."""
        return []

    def check_columns(self, panel: pd.DataFrame) -> None:  # noqa: B027 (an optional hook: no columns needed by default)
        """Raise ValueError if ``panel`` lacks a column the model needs. The harness calls it
        once before the first fold, so a configuration error stops the run instead of
        failing every fold."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
