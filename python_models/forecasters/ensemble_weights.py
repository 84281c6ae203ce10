"""Combination weights of the ensembles, per origin, from the errors realised by then.

Each function takes one (ticker, horizon)'s forecasts or squared errors (rows: consecutive
origins, columns: models) and returns the weights of every origin, re-estimated on a schedule
and held in between, shrunk toward equal weights (see :mod:`python_models.forecasters.ensemble`
for the variants and how the panel is assembled).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize

from python_models.grouped import lag, trailing


def _check(horizon: int, window: int, shrinkage: float, min_obs: int, reweight_every: int, power: float = 1.0) -> None:
    if not np.isfinite(power) or power < 0:
        raise ValueError(f"power must be a finite number >= 0, got {power}")
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage}")
    if min(horizon, window, min_obs, reweight_every) < 1:
        raise ValueError("horizon, window, min_obs and reweight_every must be positive")


def _inverse_power(mse: pd.DataFrame, power: float) -> pd.DataFrame:
    """Rows of ``mse ** -power`` normalised to sum to one. Each row is divided by its smallest MSE
    first, so a large power cannot overflow: the best model's term is 1 and the others' lie in (0, 1]."""
    scaled = mse.clip(lower=1e-18)
    scaled = scaled.div(scaled.min(axis=1), axis=0)
    inv = scaled**-power
    return inv.div(inv.sum(axis=1), axis=0)


def _shrink(perf: pd.DataFrame, shrinkage: float, ready: pd.Series) -> pd.DataFrame:
    m = perf.shape[1]
    weights = (1.0 - shrinkage) * perf + shrinkage / m
    weights.loc[~ready] = 1.0 / m
    return weights


def schedule(n: int, reweight_every: int, grid: np.ndarray | None = None, by: np.ndarray | None = None) -> np.ndarray:
    """Rows where weights are re-estimated: ``grid`` when given (a boolean mask, e.g. every k-th
    session of the exchange calendar, so that a computation over the latest rows only re-weights
    on the same days as one over the whole history), else every ``reweight_every``-th row (of each
    ``by`` label's rows, counted from its first)."""
    if grid is not None:
        grid = np.asarray(grid, bool)
        if grid.shape != (n,):
            raise ValueError(f"grid must be a boolean mask of {n} rows, got shape {grid.shape}")
        return grid
    return (np.arange(n) - _starts(n, by)) % reweight_every == 0


def _starts(n: int, by: np.ndarray | None) -> np.ndarray:
    """Each row's first row of its ``by`` label (labels contiguous); 0 for every row without labels."""
    if by is None:
        return np.zeros(n, dtype=np.int64)
    by = np.asarray(by)
    if by.shape != (n,):
        raise ValueError(f"by must label each of the {n} rows, got shape {by.shape}")
    first = np.r_[True, by[1:] != by[:-1]]
    return np.maximum.accumulate(np.where(first, np.arange(n), 0))


def _hold(
    frame: pd.DataFrame, reweight_every: int, grid: np.ndarray | None = None, by: np.ndarray | None = None
) -> pd.DataFrame:
    """Keep the rows of the re-weighting schedule and hold them (per column, the last value that is
    not NaN on a scheduled row of the same ``by`` label: ``frame.where(keep).ffill()`` per label, in
    NumPy because it runs per panel)."""
    if reweight_every == 1 and grid is None:
        return frame
    values = frame.to_numpy(float)
    keep = schedule(len(frame), reweight_every, grid, by)[:, None] & ~np.isnan(values)
    rows = np.maximum.accumulate(np.where(keep, np.arange(len(frame))[:, None], -1), axis=0)
    rows[rows < _starts(len(frame), by)[:, None]] = -1  # held from an earlier label: nothing held yet
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
    by: np.ndarray | None = None,
    power: float = 1.0,
) -> pd.DataFrame:
    """Combination weights per origin from squared errors: proportional to ``mse ** -power``.

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
    by : numpy.ndarray, optional
        A label per row, each label's rows contiguous: several series stacked, each weighted on
        its own as if alone (windows, lags and held weights stay within a label).
    power : float
        The exponent of the inverse MSE (Stock and Watson 2004's kappa): 1 is Bates and Granger's
        inverse-MSE weighting, under which models whose MSEs differ by a few percent, as daily
        return forecasts do, keep nearly equal weights whatever happens; a larger power moves the
        weight away from a model whose errors grew (a model 10 % worse than the best keeps
        ``1.1 ** -power`` of the best one's weight), 0 gives equal weights.
    """
    _check(horizon, window, shrinkage, min_obs, reweight_every, power)
    mse = _hold(lag(trailing(sq_errors, "mean", window, min_obs, by), horizon, by), reweight_every, grid, by)
    return _shrink(_inverse_power(mse, power), shrinkage, mse.notna().all(axis=1))


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
    by: np.ndarray | None = None,
) -> pd.DataFrame:
    """Walk-forward constrained stacking weights per origin (see :mod:`python_models.forecasters.ensemble`).

    At a re-weighting origin ``i`` the regression uses the origins ``i - horizon - window
    + 1 .. i - horizon`` whose realised value is known (the same information as the
    inverse-MSE weights); fewer than ``min_obs`` usable rows give equal weights. ``by`` as in
    :func:`inverse_mse_weights`.
    """
    _check(horizon, window, shrinkage, min_obs, reweight_every)
    x, y = y_pred.to_numpy(float), y_true.to_numpy(float)
    n, m = x.shape
    out = np.full((n, m), np.nan)
    ready = np.zeros(n, bool)
    starts = _starts(n, by).tolist()
    for i in np.flatnonzero(schedule(n, reweight_every, grid, by)).tolist():  # Python ints: plain index arithmetic
        lo, hi = max(starts[i], i - horizon - window + 1), i - horizon + 1
        if hi - lo < min_obs:
            continue
        xs, ys = x[lo:hi], y[lo:hi]
        ok = np.isfinite(ys) & np.isfinite(xs).all(axis=1)
        if ok.sum() < min_obs:
            continue
        out[i] = simplex_least_squares(xs[ok], ys[ok])
        ready[i] = True
    perf = pd.DataFrame(out, index=y_pred.index, columns=y_pred.columns)
    held = _hold(perf, reweight_every, grid, by)
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
    by: np.ndarray | None = None,
    power: float = 1.0,
) -> pd.DataFrame:
    """Inverse regime-expected MSE weights per origin (see :mod:`python_models.forecasters.ensemble`).

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
    by, power : optional
        As for :func:`inverse_mse_weights`.
    """
    _check(horizon, window, shrinkage, min_obs, reweight_every, power)
    if prior_obs < 0:
        raise ValueError(f"prior_obs must be >= 0, got {prior_obs}")
    probs = regimes.reindex(sq_errors.index)
    has_probs = probs.notna().all(axis=1)
    p = probs.fillna(0.0).to_numpy(float)
    e = sq_errors.to_numpy(float)
    mse = lag(trailing(sq_errors, "mean", window, min_obs, by), horizon, by)
    known = np.isfinite(e).astype(float)
    e0 = np.nan_to_num(e)
    overall = _hold(mse, reweight_every, grid, by)
    n, m = e.shape
    regimes_n = p.shape[1]
    # per regime r (column blocks of m): realised error mass and the observations seen over the trailing
    # window, lagged by the horizon; one rolling sum over all blocks (each column is summed on its own)
    by_regime = np.hstack([e0 * p[:, [r]] for r in range(regimes_n)] + [known * p[:, [r]] for r in range(regimes_n)])
    sums = lag(trailing(pd.DataFrame(by_regime), "sum", window, 1, by), horizon, by).to_numpy()
    mass, seen = sums[:, : regimes_n * m], sums[:, regimes_n * m :]
    mse_r = (mass + prior_obs * np.tile(mse.to_numpy(), regimes_n)) / (seen + prior_obs)
    # the error tables refresh on the schedule; today's regime probabilities move the weights daily
    held = _hold(pd.DataFrame(mse_r), reweight_every, grid, by).to_numpy().reshape(n, regimes_n, m)
    expected = (held * p[:, :, None]).sum(axis=1) if regimes_n else np.zeros_like(e)
    unconditional = overall.to_numpy()
    expected = np.where(has_probs.to_numpy()[:, None], expected, unconditional)
    expected = pd.DataFrame(
        np.where(np.isnan(unconditional), np.nan, expected), index=sq_errors.index, columns=sq_errors.columns
    )
    return _shrink(_inverse_power(expected, power), shrinkage, expected.notna().all(axis=1))
