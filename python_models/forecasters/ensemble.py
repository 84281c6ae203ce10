"""Performance-weighted combination of forecasts, in three variants.

Every variant sees, at origin ``t``, only the errors already realised at ``t`` (those of
forecasts whose target session is ``t`` or earlier: an ``h``-session forecast made ``h``
rows before) over a trailing ``window``, and every variant's weights are shrunk toward
equal weights. Weights are re-estimated every ``reweight_every`` origins and held in
between; until ``min_obs`` errors of every model are realised they are equal.

``inverse_mse`` (model ``ensemble``)
    weight proportional to 1 / trailing MSE.
``stacking`` (``ensemble_stacking``)
    the least-squares combination of the trailing forecasts with non-negative weights
    that sum to one (constrained stacking, Breiman 1996), fitted walk-forward.
``regime`` (``ensemble_regime``)
    inverse of the MSE *expected in today's regime*: each model's trailing squared errors
    are averaged per HMM regime, weighting each past error by the filtered probability of
    the regime at its origin (shrunk toward the model's overall MSE when a regime has few
    observations), then mixed with today's filtered regime probabilities.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import optimize, stats

from python_models.forecasters.base import INTERVAL_LEVEL

#: Variant name -> model name written to the forecast tables.
VARIANTS = {"inverse_mse": "ensemble", "stacking": "ensemble_stacking", "regime": "ensemble_regime"}


def _check(horizon: int, window: int, shrinkage: float, min_obs: int, reweight_every: int) -> None:
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage}")
    if min(horizon, window, min_obs, reweight_every) < 1:
        raise ValueError("horizon, window, min_obs and reweight_every must be positive")


def _shrink(perf: pd.DataFrame, shrinkage: float, ready: pd.Series) -> pd.DataFrame:
    m = perf.shape[1]
    weights = (1.0 - shrinkage) * perf + shrinkage / m
    weights.loc[~ready] = 1.0 / m
    return weights


def schedule(n: int, reweight_every: int, grid: np.ndarray | None = None) -> np.ndarray:
    """Rows where weights are re-estimated: ``grid`` when given (a boolean mask, e.g. every k-th
    session of the exchange calendar, so that a computation over the latest rows only re-weights
    on the same days as one over the whole history), else every ``reweight_every``-th row."""
    if grid is not None:
        grid = np.asarray(grid, bool)
        if grid.shape != (n,):
            raise ValueError(f"grid must be a boolean mask of {n} rows, got shape {grid.shape}")
        return grid
    return np.arange(n) % reweight_every == 0


def _hold(frame: pd.DataFrame, reweight_every: int, grid: np.ndarray | None = None) -> pd.DataFrame:
    """Keep the rows of the re-weighting schedule and hold them (per column, the last value that is
    not NaN on a scheduled row: ``frame.where(keep).ffill()``, in NumPy because it runs per panel)."""
    if reweight_every == 1 and grid is None:
        return frame
    values = frame.to_numpy(float)
    keep = schedule(len(frame), reweight_every, grid)[:, None] & ~np.isnan(values)
    rows = np.maximum.accumulate(np.where(keep, np.arange(len(frame))[:, None], -1), axis=0)
    held = np.take_along_axis(values, np.maximum(rows, 0), axis=0)
    held[rows < 0] = np.nan
    return pd.DataFrame(held, index=frame.index, columns=frame.columns)


def inverse_mse_weights(
    sq_errors: pd.DataFrame,
    horizon: int,
    window: int = 252,
    shrinkage: float = 0.5,
    min_obs: int = 21,
    reweight_every: int = 1,
    grid: np.ndarray | None = None,
) -> pd.DataFrame:
    """Combination weights per origin from squared errors.

    Parameters
    ----------
    sq_errors : pandas.DataFrame
        Index: consecutive forecast origins (sessions); columns: models; values: squared
        error of the ``horizon``-session forecast made at that origin (NaN if unrealised).
    horizon : int
        The error at origin ``i`` is known ``horizon`` rows later, so it enters the
        weights from row ``i + horizon`` on.
    window, shrinkage, min_obs, reweight_every
        Trailing errors used, weight on the equal-weight prior (0..1), the fewest realised
        errors before performance weighting starts, and origins between re-estimations.
    grid : numpy.ndarray, optional
        Boolean mask of the re-estimation rows (see :func:`schedule`).
    """
    _check(horizon, window, shrinkage, min_obs, reweight_every)
    mse = _hold(sq_errors.rolling(window, min_periods=min_obs).mean().shift(horizon), reweight_every, grid)
    inv = 1.0 / mse.clip(lower=1e-18)
    return _shrink(inv.div(inv.sum(axis=1), axis=0), shrinkage, mse.notna().all(axis=1))


def simplex_least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``argmin ||x w - y||`` over ``w >= 0, sum(w) = 1``.

    Solved exactly as a non-negative least-squares problem: with ``w = v + e_k`` removed
    by substitution the equality constraint would break non-negativity, so instead the
    constraint is appended as a heavily weighted row (the penalty method, exact to about
    1e-9 in the weights at this scale) and the solution renormalised.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (n, m) and y (n,), got {x.shape} and {y.shape}")
    scale = max(float(np.sqrt(np.mean(x**2))), 1e-12) * 1e4 * np.sqrt(x.shape[0])
    a = np.vstack([x, np.full((1, x.shape[1]), scale)])
    b = np.append(y, scale)
    w, _ = optimize.nnls(a, b, maxiter=50 * x.shape[1])
    total = w.sum()
    return w / total if total > 0 else np.full(x.shape[1], 1.0 / x.shape[1])


def stacking_weights(
    y_pred: pd.DataFrame,
    y_true: pd.Series,
    horizon: int,
    window: int = 252,
    shrinkage: float = 0.5,
    min_obs: int = 63,
    reweight_every: int = 21,
    grid: np.ndarray | None = None,
) -> pd.DataFrame:
    """Walk-forward constrained stacking weights per origin (see the module docstring).

    At a re-weighting origin ``i`` the regression uses the origins ``i - horizon - window
    + 1 .. i - horizon`` whose realised value is known (the same information as the
    inverse-MSE weights); fewer than ``min_obs`` usable rows give equal weights.
    """
    _check(horizon, window, shrinkage, min_obs, reweight_every)
    x, y = y_pred.to_numpy(float), y_true.to_numpy(float)
    n, m = x.shape
    out = np.full((n, m), np.nan)
    ready = np.zeros(n, bool)
    for i in np.flatnonzero(schedule(n, reweight_every, grid)):
        lo, hi = max(0, i - horizon - window + 1), i - horizon + 1
        if hi - lo < min_obs:
            continue
        xs, ys = x[lo:hi], y[lo:hi]
        ok = np.isfinite(ys) & np.isfinite(xs).all(axis=1)
        if ok.sum() < min_obs:
            continue
        out[i] = simplex_least_squares(xs[ok], ys[ok])
        ready[i] = True
    perf = pd.DataFrame(out, index=y_pred.index, columns=y_pred.columns)
    held = _hold(perf, reweight_every, grid)
    return _shrink(held.fillna(1.0 / m), shrinkage, held.notna().all(axis=1))


def regime_weights(
    sq_errors: pd.DataFrame,
    regimes: pd.DataFrame,
    horizon: int,
    window: int = 252,
    shrinkage: float = 0.5,
    min_obs: int = 21,
    reweight_every: int = 1,
    prior_obs: float = 21.0,
    grid: np.ndarray | None = None,
) -> pd.DataFrame:
    """Inverse regime-expected MSE weights per origin (see the module docstring).

    Parameters
    ----------
    sq_errors : pandas.DataFrame
        As for :func:`inverse_mse_weights`.
    regimes : pandas.DataFrame
        Filtered regime probabilities known at each origin (rows: origins of ``sq_errors``,
        columns: regimes). Origins without probabilities fall back to the unconditional MSE.
    prior_obs : float
        Pseudo-observations of the model's overall MSE added to each regime's average, so a
        regime seen a few times in the window does not swing the weights.
    """
    _check(horizon, window, shrinkage, min_obs, reweight_every)
    if prior_obs < 0:
        raise ValueError(f"prior_obs must be >= 0, got {prior_obs}")
    probs = regimes.reindex(sq_errors.index)
    has_probs = probs.notna().all(axis=1)
    p = probs.fillna(0.0).to_numpy(float)
    e = sq_errors.to_numpy(float)
    mse = sq_errors.rolling(window, min_periods=min_obs).mean().shift(horizon)
    known = np.isfinite(e).astype(float)
    e0 = np.nan_to_num(e)
    overall = _hold(mse, reweight_every, grid)
    n, m = e.shape
    regimes_n = p.shape[1]
    # per regime r (column blocks of m): realised error mass and the observations seen over the trailing
    # window, lagged by the horizon; one rolling sum over all blocks (each column is summed on its own)
    by_regime = np.hstack([e0 * p[:, [r]] for r in range(regimes_n)] + [known * p[:, [r]] for r in range(regimes_n)])
    sums = pd.DataFrame(by_regime).rolling(window, min_periods=1).sum().shift(horizon).to_numpy()
    mass, seen = sums[:, : regimes_n * m], sums[:, regimes_n * m :]
    mse_r = (mass + prior_obs * np.tile(mse.to_numpy(), regimes_n)) / (seen + prior_obs)
    # the error tables refresh on the schedule; today's regime probabilities move the weights daily
    held = _hold(pd.DataFrame(mse_r), reweight_every, grid).to_numpy().reshape(n, regimes_n, m)
    expected = (held * p[:, :, None]).sum(axis=1) if regimes_n else np.zeros_like(e)
    unconditional = overall.to_numpy()
    expected = np.where(has_probs.to_numpy()[:, None], expected, unconditional)
    expected = pd.DataFrame(
        np.where(np.isnan(unconditional), np.nan, expected), index=sq_errors.index, columns=sq_errors.columns
    )
    inv = 1.0 / expected.clip(lower=1e-18)
    return _shrink(inv.div(inv.sum(axis=1), axis=0), shrinkage, expected.notna().all(axis=1))


def _mixture(weights: np.ndarray, y_pred: np.ndarray, y_std: np.ndarray, level: float) -> dict[str, np.ndarray]:
    # C order: each row's sums then do not depend on how many rows are combined together
    weights, y_pred, y_std = (np.ascontiguousarray(a, float) for a in (weights, y_pred, y_std))
    mean = (weights * y_pred).sum(axis=1)
    second = (weights * (y_std**2 + y_pred**2)).sum(axis=1)
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    z = stats.norm.ppf(0.5 + level / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        confidence = stats.norm.cdf(np.abs(mean) / np.where(std > 0, std, np.nan))
    return {
        "y_pred": mean,
        "y_std": std,
        "y_lower": mean - z * std,
        "y_upper": mean + z * std,
        "confidence": confidence,
    }


def combine_forecasts(
    y_pred: pd.DataFrame, y_std: pd.DataFrame, weights: pd.DataFrame, level: float = INTERVAL_LEVEL
) -> pd.DataFrame:
    """Weighted mixture of model forecasts (all frames indexed by origin, columns = models).

    The mean is the weighted mean; the standard deviation is that of the mixture,
    ``sqrt(sum w (s^2 + m^2) - mean^2)``; the interval and ``confidence`` (probability the
    realised return has the forecast's sign) treat the mixture as normal.
    """
    columns = list(y_pred.columns)
    if list(y_std.columns) != columns or list(weights.columns) != columns:
        raise ValueError("y_pred, y_std and weights must have the same model columns")
    return pd.DataFrame(_mixture(weights.to_numpy(), y_pred.to_numpy(), y_std.to_numpy(), level), index=y_pred.index)


def regime_table(regimes: pd.DataFrame) -> pd.DataFrame:
    """Wide filtered probabilities (index: date, columns: regime) from ``date, regime, probability`` rows."""
    missing = {"date", "regime", "probability"} - set(regimes.columns)
    if missing:
        raise ValueError(f"regime probabilities lack columns {sorted(missing)}")
    wide = regimes.pivot(index="date", columns="regime", values="probability").sort_index()
    wide.index = pd.DatetimeIndex(wide.index)
    return wide


FORECAST_COLUMNS = [
    "model",
    "ticker",
    "asof_date",
    "horizon",
    "target_date",
    "y_pred",
    "y_lower",
    "y_upper",
    "y_std",
    "confidence",
]
WEIGHT_COLUMNS = ["ensemble", "ticker", "horizon", "asof_date", "model", "weight"]


class _Chunk(NamedTuple):
    """One variant's weights and combination inputs for one (ticker, horizon), at the origins returned."""

    name: str
    ticker: str
    horizon: int
    origins: pd.Index
    models: list[str]
    weights: np.ndarray
    y_pred: np.ndarray
    y_std: np.ndarray
    targets: np.ndarray


def _long_tables(chunks: list[_Chunk], forecasts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ensemble forecasts and the long weights (one row per origin and model, models in the
    order of each chunk's columns) of all chunks, built at once: per chunk, pandas' reshaping
    costs more than the weights themselves."""
    rows = np.array([len(c.origins) for c in chunks], dtype=np.int64)
    n_models = np.array([len(c.models) for c in chunks], dtype=np.int64)
    origin_dtype = forecasts["asof_date"].dtype

    def stacked(values: list[np.ndarray], dtype=None) -> np.ndarray:
        return np.concatenate(values).astype(dtype) if values else np.array([], dtype=dtype)

    mixed = [_mixture(c.weights, c.y_pred, c.y_std, INTERVAL_LEVEL) for c in chunks]
    ensemble = pd.DataFrame(
        {
            "model": np.repeat([c.name for c in chunks], rows).astype(object),
            "ticker": np.repeat([c.ticker for c in chunks], rows).astype(object),
            "asof_date": stacked([c.origins.to_numpy() for c in chunks], origin_dtype),
            "horizon": np.repeat([c.horizon for c in chunks], rows).astype(np.int64),
            "target_date": stacked([c.targets for c in chunks], forecasts["target_date"].dtype),
            **{col: stacked([m[col] for m in mixed], float) for col in FORECAST_COLUMNS[5:]},
        }
    )
    # melt's order: model by model, every origin of the chunk under each
    long_rows = rows * n_models
    weights = pd.DataFrame(
        {
            "ensemble": np.repeat([c.name for c in chunks], long_rows).astype(object),
            "ticker": np.repeat([c.ticker for c in chunks], long_rows).astype(object),
            "horizon": np.repeat([c.horizon for c in chunks], long_rows).astype(np.int64),
            "asof_date": stacked([np.tile(c.origins.to_numpy(), len(c.models)) for c in chunks], origin_dtype),
            "model": stacked([np.repeat(np.asarray(c.models, object), len(c.origins)) for c in chunks], object),
            "weight": stacked([c.weights.T.ravel() for c in chunks], float),
        }
    )
    return ensemble[FORECAST_COLUMNS], weights[WEIGHT_COLUMNS]


def ensemble_panel(
    forecasts: pd.DataFrame,
    window: int = 252,
    shrinkage: float = 0.5,
    min_obs: int = 21,
    reweight_every: int = 21,
    methods: tuple[str, ...] = ("inverse_mse",),
    regimes: pd.DataFrame | None = None,
    calendar: pd.DatetimeIndex | None = None,
    after: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ensemble forecasts and weights for every (ticker, horizon) and variant.

    Parameters
    ----------
    forecasts : pandas.DataFrame
        Long frame with ``model, ticker, asof_date, horizon, target_date, y_pred, y_std,
        y_true`` (``y_true`` NaN while unrealised). Origins must be consecutive sessions
        per (ticker, horizon), as the walk-forward harness writes them.
    methods : tuple of str
        Variants to build, keys of :data:`VARIANTS`.
    regimes : pandas.DataFrame, optional
        ``date, regime, probability`` rows (filtered, point-in-time); required by ``regime``.
    calendar : pandas.DatetimeIndex, optional
        The exchange's sessions: weights are then re-estimated on every ``reweight_every``-th
        session of it, whatever the first origin in ``forecasts`` (so the latest rows alone,
        with ``window + horizon + reweight_every`` origins before them, give the rows the whole
        history gives). Without it, on every ``reweight_every``-th origin.
    after : pandas.Timestamp, optional
        Return only the origins after this date (an incremental run's new rows); the weights of
        those origins are still estimated from all of ``forecasts``.

    Returns
    -------
    (ensemble, weights)
        ``ensemble`` has the forecast columns, ``model`` naming the variant; ``weights``
        has ``ensemble, ticker, horizon, asof_date, model, weight``.
    """
    need = {"model", "ticker", "asof_date", "horizon", "target_date", "y_pred", "y_std", "y_true"}
    if need - set(forecasts.columns):
        raise ValueError(f"forecasts lack columns {sorted(need - set(forecasts.columns))}")
    unknown = set(methods) - set(VARIANTS)
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {sorted(VARIANTS)}, got {sorted(methods)}")
    if "regime" in methods and regimes is None:
        raise ValueError("the regime variant needs the regime probabilities")
    wide_regimes = regime_table(regimes) if regimes is not None else None
    # categorical keys keep the long weights table (rows: variants x models x origins) small
    as_cat = {
        "ensemble": pd.CategoricalDtype([VARIANTS[m] for m in methods]),
        "ticker": pd.CategoricalDtype(sorted(forecasts["ticker"].unique())),
        "model": pd.CategoricalDtype(sorted(forecasts["model"].unique())),
    }
    chunks = []
    for (ticker, horizon), g in forecasts.groupby(["ticker", "horizon"], sort=True):
        h = int(horizon)
        wide = g.pivot(index="asof_date", columns="model", values=["y_pred", "y_std", "y_true"]).sort_index()
        wide = wide.dropna(subset=[c for c in wide.columns if c[0] != "y_true"])  # origins all models share
        y_pred, y_std = wide["y_pred"], wide["y_std"]
        y_true = wide["y_true"].iloc[:, 0]
        sq = y_pred.sub(y_true, axis=0) ** 2
        targets = g.drop_duplicates("asof_date").set_index("asof_date")["target_date"]
        grid = None
        if calendar is not None:
            pos = pd.DatetimeIndex(calendar).get_indexer(pd.DatetimeIndex(sq.index))
            if (pos < 0).any():
                raise ValueError(f"{ticker}: forecast origins missing from the calendar")
            grid = pos % reweight_every == 0
        new_rows = np.ones(len(sq), bool) if after is None else np.asarray(sq.index > after)
        for method in methods:
            if method == "inverse_mse":
                w = inverse_mse_weights(sq, h, window, shrinkage, min_obs, reweight_every, grid)
            elif method == "stacking":
                w = stacking_weights(y_pred, y_true, h, window, shrinkage, max(min_obs, 63), reweight_every, grid)
            else:
                w = regime_weights(
                    sq,
                    wide_regimes.reindex(pd.DatetimeIndex(sq.index)).set_axis(sq.index),
                    h,
                    window,
                    shrinkage,
                    min_obs,
                    reweight_every,
                    grid=grid,
                )
            chunks.append(
                _Chunk(
                    VARIANTS[method],
                    ticker,
                    h,
                    sq.index[new_rows],
                    list(w.columns),
                    w.to_numpy(float)[new_rows],
                    y_pred.to_numpy(float)[new_rows],
                    y_std.to_numpy(float)[new_rows],
                    targets.reindex(sq.index[new_rows]).to_numpy(),
                )
            )
    ensemble, weights = _long_tables(chunks, forecasts)
    weights = weights.astype(as_cat)
    return ensemble, weights
