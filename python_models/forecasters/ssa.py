"""SAMoSSA: singular spectrum analysis on the Page matrix plus an AR model of the residual.

After Alomar, Dahleh, Mann and Shah, "SAMoSSA: Multivariate Singular Spectrum Analysis
with Stochastic Autoregressive Noise" (NeurIPS 2023), for one series of log price levels:

1. the training window's levels, centred on their mean, fill a Page matrix
   (``L`` rows, non-overlapping columns, the latest observation in the last cell);
2. its leading singular components, as many as capture ``energy`` (90 %) of the squared
   Frobenius norm, de-noise it and give the deterministic part ``f``;
3. the linear recurrent formula of that subspace (``beta``, ``L - 1`` weights) forecasts
   ``f`` one step from the ``L - 1`` values before it; roots of its characteristic
   polynomial outside the unit disk are pulled onto it (``stabilise``), so no forecast
   explodes;
4. an AR(1) fitted by least squares to the residual ``x - f`` forecasts the noise.

Levels are centred: the training window's mean level is 0, and a forecast from origin
``t`` centres by the mean of the same number of levels ending at ``t`` (nothing later).
From there ``f`` is continued by the recurrent formula from the last ``L - 1`` levels, the
current residual ``e_t`` is ``x_t`` minus its one-step recurrent forecast, and the
forecast cumulative log return over ``h`` sessions is ``f_(t+h) + phi^h e_t - x_t``. Its variance
is the mean squared error of that same forecast at every in-sample origin of the training
window (empirical, per horizon).

Every step is written for a batch of equal-length windows at once (``fit_windows``): the
Page matrices are stacked, their Gram matrices eigendecomposed in one call, and the
recurrent formula, AR fit and in-sample errors vectorised over windows. The array module
is NumPy, or CuPy when a CUDA device is present (``xp``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from python_models.forecasters.array_module import gpu_module, to_numpy, xp_for
from python_models.forecasters.base import (
    DEFAULT_HORIZONS,
    FitResult,
    Forecaster,
    ReturnForecast,
    check_origins,
    validate_fitted_horizons,
    validate_horizons,
    validate_returns,
)


@dataclass(frozen=True)
class SsaFit:
    """Parameters of one or many SAMoSSA fits (leading axis: window)."""

    beta: np.ndarray  # (B, L - 1): recurrent-formula weights, oldest lag first
    projection: np.ndarray  # (B, L, L): projector on the kept components
    phi: np.ndarray  # (B,): AR(1) coefficient of the residual
    rank: np.ndarray  # (B,): components kept
    energy: np.ndarray  # (B,): share of the squared norm they capture
    residual_var: np.ndarray  # (B,): variance of x - f in sample
    error_var: np.ndarray  # (B, H): in-sample MSE of the h-session cumulative forecast
    horizons: tuple[int, ...]


def page_matrices(levels, rows: int):
    """Stack Page matrices of windows ``levels`` (B, T): (B, rows, T // rows), the last
    observation in the last cell, earlier leftovers dropped."""
    b, t = levels.shape
    cols = t // rows
    used = levels[:, t - cols * rows :]
    return used.reshape(b, cols, rows).transpose(0, 2, 1)


def _recurrent_weights(u, keep, xp):
    """Linear recurrent formula of the column space of ``u[:, :, keep]`` (Golyandina's SSA
    forecasting): x_L = sum_i beta_i x_i over the previous L - 1 values."""
    uk = u * keep[:, None, :]
    pi = uk[:, -1, :]  # last row of each kept eigenvector
    nu2 = xp.sum(pi * pi, axis=1)
    # nu^2 < 1 unless the last coordinate is fully in the signal space; guard the division
    denom = xp.where(nu2 < 1 - 1e-12, 1 - nu2, xp.nan)
    return xp.einsum("bik,bk->bi", uk[:, :-1, :], pi) / denom[:, None]


def stabilise(beta, xp, max_modulus: float = 1.0):
    """The recurrent formula with the roots of its characteristic polynomial pulled onto
    the unit disk: SSA's minimum-norm formula can have roots outside it, and its forecasts
    then explode (seen on real prices). A root r with |r| > 1 becomes r / |r|, which keeps
    its frequency and turns growth into persistence."""
    b, lags = beta.shape
    a = beta[:, ::-1]  # a_1 (latest lag) .. a_p
    companion = xp.zeros((b, lags, lags))
    companion[:, 0, :] = a
    companion[:, xp.arange(1, lags), xp.arange(lags - 1)] = 1.0
    roots = xp.linalg.eigvals(companion)
    modulus = xp.abs(roots)
    outside = xp.any(modulus > max_modulus, axis=1)
    roots = xp.where(modulus > max_modulus, roots / modulus * max_modulus, roots)
    poly = xp.zeros((b, lags + 1), dtype=complex)  # monic: z^p + c_1 z^(p-1) + ... + c_p
    poly[:, 0] = 1.0
    for k in range(lags):
        poly[:, 1 : k + 2] = poly[:, 1 : k + 2] - roots[:, k : k + 1] * poly[:, : k + 1]
    rebuilt = (-poly[:, 1:].real)[:, ::-1]
    return xp.where(outside[:, None], rebuilt, beta)  # stable formulas are left exactly as they were


def _horizon_weights(beta, hs: tuple[int, ...], xp):
    """Weights (B, L - 1, H) such that the recurrent forecast h steps ahead is the last
    L - 1 values dotted with column h: the formula is linear, so running it once from each
    unit history gives every origin's forecast as one matrix product."""
    b, lags = beta.shape
    h_max = max(hs)
    path = xp.zeros((b, lags, lags + h_max))
    path[:, :, :lags] = xp.eye(lags)[None]
    for k in range(h_max):
        path[:, :, lags + k] = xp.einsum("bjl,bl->bj", path[:, :, k : k + lags], beta)
    return path[:, :, lags - 1 + xp.asarray(hs)]


def _forecast_paths(window, projection, beta, phi, hs: tuple[int, ...], xp):
    """Cumulative-return forecasts (B, n, H) for horizons ``hs`` from windows (B, n, L) of
    the L centred levels ending at each origin. The window is projected on the kept
    components (its de-noised values f); the recurrent formula continues f from its last
    L - 1 values; the noise ``e_t = x_t - f_t`` decays as ``phi^h e_t``."""
    now = window[..., -1]
    denoised = window @ projection.transpose(0, 2, 1)  # batched BLAS: (B, n, L) @ (B, L, L)
    e_now = now - denoised[..., -1]
    deterministic = denoised[..., 1:] @ _horizon_weights(beta, hs, xp)
    decay = phi[:, None] ** xp.asarray(hs)[None, :]  # (B, H)
    return deterministic + decay[:, None, :] * e_now[..., None] - now[..., None]


def _windows_at(levels, origins, rows: int, xp):
    """The ``rows`` levels ending at each origin: (B, n, rows) from levels (B, T), origins (B, n)."""
    idx = origins[..., None] + xp.arange(-(rows - 1), 1)
    b, n, _ = idx.shape
    return xp.take_along_axis(levels, idx.reshape(b, -1), axis=1).reshape(b, n, rows)


def _in_sample_error_var(x, projection, beta, phi, rows, hs, first, last, xp, chunk: int = 256):
    """Mean squared error of the h-session forecast at every in-sample origin, per window
    (computed ``chunk`` windows at a time to bound memory)."""
    out = []
    for lo in range(0, x.shape[0], chunk):
        part = slice(lo, lo + chunk)
        xs = x[part]
        if xp is np:  # origins first..last are contiguous: their windows are a strided view, not a gather
            window = np.lib.stride_tricks.sliding_window_view(xs[:, first - rows + 1 : last + 1], rows, axis=1)
        else:
            origins = xp.broadcast_to(xp.arange(first, last + 1)[None, :], (xs.shape[0], last - first + 1))
            window = _windows_at(xs, origins, rows, xp)
        paths = _forecast_paths(window, projection[part], beta[part], phi[part], hs, xp)
        now = xs[:, first : last + 1]
        realised = xp.stack([xs[:, first + h : last + 1 + h] for h in hs], axis=-1) - now[..., None]
        out.append(xp.mean((paths - realised) ** 2, axis=1))
    return xp.concatenate(out)


def fit_windows(
    levels, rows: int, horizons: Sequence[int] = DEFAULT_HORIZONS, energy: float = 0.9, xp=None, shared: bool = False
) -> SsaFit:
    """Fit SAMoSSA to every window of ``levels`` (B, T) at once.

    Parameters
    ----------
    levels : array (B, T)
        Log price levels, oldest first; each row is one training window.
    rows : int
        Rows ``L`` of the Page matrix (and ``L - 1`` lags of the recurrent formula).
    horizons : sequence of int
        Horizons whose in-sample error variance is estimated.
    energy : float
        Share of the squared norm the kept components must capture.
    xp : module, optional
        numpy or cupy; by default the module of ``levels``.
    shared : bool
        Multivariate SSA (mSSA): the rows are different series over the same sessions, and
        one subspace is fitted to their Page matrices stacked side by side (its Gram matrix
        is the sum of theirs), so every series shares the kept components, the rank and the
        recurrent formula; the residual AR(1) and error variances stay per series.
    """
    xp = xp or xp_for(levels)
    levels = _checked_levels(levels, rows, energy, xp)
    b, t = levels.shape
    hs = validate_horizons(horizons)
    x = levels - xp.mean(levels, axis=1, keepdims=True)  # centred: the window's mean level is 0
    page = page_matrices(x, rows)
    gram = page @ page.transpose(0, 2, 1)
    if shared:
        gram = xp.sum(gram, axis=0, keepdims=True)
    eigval, eigvec = xp.linalg.eigh(gram)  # ascending
    eigval, eigvec = eigval[:, ::-1], eigvec[:, :, ::-1]
    eigval = xp.maximum(eigval, 0.0)
    total = xp.sum(eigval, axis=1, keepdims=True)
    share = xp.cumsum(eigval, axis=1) / xp.where(total > 0, total, 1.0)
    rank = xp.minimum(xp.sum(share < energy - 1e-12, axis=1) + 1, rows - 1)  # the LRF needs rank < L
    keep = (xp.arange(rows)[None, :] < rank[:, None]).astype(xp.float64)
    # on the host: the roots need a general eigensolver, which CuPy lacks (B x 20 x 20 is small)
    beta = xp.asarray(stabilise(to_numpy(_recurrent_weights(eigvec, keep, xp)), np))
    if shared:  # one subspace for every series
        eigvec, keep, rank, share, beta = (
            xp.broadcast_to(a, (b,) + a.shape[1:]) for a in (eigvec, keep, rank, share, beta)
        )
    # de-noised Page matrix -> deterministic part f on the used sessions
    uk = eigvec * keep[:, None, :]
    denoised = uk @ (uk.transpose(0, 2, 1) @ page)
    used = page.shape[1] * page.shape[2]
    f = denoised.transpose(0, 2, 1).reshape(b, used)
    resid = x[:, t - used :] - f
    phi = xp.sum(resid[:, 1:] * resid[:, :-1], axis=1) / xp.maximum(xp.sum(resid[:, :-1] ** 2, axis=1), 1e-300)
    phi = xp.clip(phi, -0.99, 0.99)
    # in-sample errors of the forecast itself, at every origin with L - 1 lags and h_max ahead
    h_max = max(hs)
    first, last = rows - 1, t - 1 - h_max
    if last < first:
        raise ValueError(f"windows of {t} sessions are too short for {rows} rows and horizon {h_max}")
    projection = uk @ uk.transpose(0, 2, 1)
    error_var = _in_sample_error_var(x, projection, beta, phi, rows, hs, first, last, xp)
    return SsaFit(
        beta=to_numpy(beta),
        projection=to_numpy(projection),
        phi=to_numpy(phi),
        rank=to_numpy(rank),
        energy=to_numpy(xp.take_along_axis(share, (rank - 1)[:, None], axis=1)[:, 0]),
        residual_var=to_numpy(xp.var(resid, axis=1)),
        error_var=to_numpy(error_var),
        horizons=hs,
    )


def _checked_levels(levels, rows: int, energy: float, xp):
    """``levels`` as a float64 array of ``xp``, or ValueError if it cannot be fitted with ``rows`` and ``energy``."""
    levels = xp.asarray(levels, dtype=xp.float64)
    if levels.ndim != 2:
        raise ValueError(f"levels must be 2-D (windows x sessions), got shape {levels.shape}")
    t = levels.shape[1]
    if not 3 <= rows <= t // 3:
        raise ValueError(f"Page matrix rows must be in [3, {t // 3}] for windows of {t} sessions, got {rows}")
    if not 0 < energy <= 1:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    if not bool(xp.all(xp.isfinite(levels))):
        raise ValueError("levels contain NaN or infinite values")
    return levels


def fit_windows_naive(levels: np.ndarray, rows: int, horizons: Sequence[int] = DEFAULT_HORIZONS, energy: float = 0.9):
    """The same fit one window at a time, the basis from ``numpy.linalg.svd`` of each Page
    matrix: the reference the batched version is tested and benchmarked against."""
    hs = validate_horizons(horizons)
    fits = []
    for window in np.asarray(levels, dtype=float):
        x = (window - window.mean())[None, :]
        page = page_matrices(x, rows)
        u, s, _ = np.linalg.svd(page[0])
        share = np.cumsum(s**2) / np.sum(s**2)
        rank = min(int(np.searchsorted(share, energy - 1e-12)) + 1, rows - 1)
        keep = (np.arange(rows) < rank).astype(float)[None, :]
        beta = stabilise(_recurrent_weights(u[None], keep, np), np)
        uk = u[None] * keep[:, None, :]
        projection = uk @ uk.transpose(0, 2, 1)
        used = page.shape[1] * page.shape[2]
        resid = x[:, x.shape[1] - used :] - (projection @ page).transpose(0, 2, 1).reshape(1, used)
        phi = np.clip(np.sum(resid[:, 1:] * resid[:, :-1], axis=1) / np.sum(resid[:, :-1] ** 2, axis=1), -0.99, 0.99)
        error_var = _in_sample_error_var(x, projection, beta, phi, rows, hs, rows - 1, x.shape[1] - 1 - max(hs), np)
        fits.append((beta[0], projection[0], phi[0], rank, share[rank - 1], resid.var(), error_var[0]))

    def stacked(i: int) -> np.ndarray:
        return np.stack([np.asarray(f[i]) for f in fits])

    return SsaFit(
        beta=stacked(0),
        projection=stacked(1),
        phi=stacked(2),
        rank=stacked(3),
        energy=stacked(4),
        residual_var=stacked(5),
        error_var=stacked(6),
        horizons=hs,
    )


@dataclass(kw_only=True)  # keyword-only: the fitted arrays have no default, FitResult's fields do
class SamossaResult(FitResult):
    """One SAMoSSA fit; ``params`` holds beta (``beta_1`` oldest), phi and the rank."""

    rows: int = 21
    window: int = 0  # levels in the training window (one more than its returns)
    projection: np.ndarray
    error_var: np.ndarray
    error_horizons: tuple[int, ...] = ()

    def forecast(self, returns: pd.Series, origins: pd.Index, horizons: Sequence[int]) -> ReturnForecast:
        pos = check_origins(returns, origins)
        hs = validate_fitted_horizons(horizons, self.error_horizons)
        # levels up to the last origin only: nothing later can be read
        levels = np.concatenate([[0.0], np.cumsum(returns.to_numpy(float)[: pos.max() + 1])])
        at = pos + 1  # levels[i + 1] is the level after return i
        if at.min() < self.window - 1:
            raise ValueError(f"each origin needs {self.window - 1} earlier sessions to centre its levels")
        # centred as in training: by the mean of the window-length stretch ending at the origin
        csum = np.concatenate([[0.0], np.cumsum(levels)])
        centre = (csum[at + 1] - csum[at + 1 - self.window]) / self.window
        beta = self.params[[f"beta_{i}" for i in range(1, self.rows)]].to_numpy()[None, :]
        phi = np.asarray([self.params["phi"]])
        window = _windows_at(levels[None, :], at[None, :], self.rows, np) - centre[None, :, None]
        mean = _forecast_paths(window, self.projection[None], beta, phi, hs, np)[0]
        var_by_h = dict(zip(self.error_horizons, self.error_var, strict=True))
        var = np.tile([var_by_h[h] for h in hs], (len(pos), 1))
        return ReturnForecast(pd.Index(origins), hs, mean, var)


class Samossa(Forecaster):
    """SAMoSSA on log price levels (see the module docstring).

    Parameters
    ----------
    rows : int
        Rows ``L`` of the Page matrix.
    energy : float
        Share of the squared norm the kept singular components capture.
    horizons : sequence of int
        Horizons whose error variance is estimated at fit time (forecasts are limited to them).
    """

    def __init__(self, rows: int = 21, energy: float = 0.9, horizons: Sequence[int] = DEFAULT_HORIZONS) -> None:
        if rows < 3:
            raise ValueError(f"rows must be at least 3, got {rows}")
        self.rows, self.energy, self.horizons = rows, energy, validate_horizons(horizons)
        self.name = "samossa"

    def fit(self, returns: pd.Series) -> SamossaResult:
        return self.fit_many([returns])[0]

    def fit_many(self, windows: Sequence[pd.Series]) -> list[SamossaResult]:
        """Fit several training windows of equal length in one batched call (the
        walk-forward harness passes every fold of a series at once)."""
        rs = [validate_returns(w, min_obs=3 * self.rows + max(self.horizons)) for w in windows]
        if len({len(r) for r in rs}) > 1:
            return [self.fit_many([r])[0] for r in rs]  # expanding windows: one at a time
        returns = np.stack([r.to_numpy() for r in rs])
        levels = np.concatenate([np.zeros((len(rs), 1)), np.cumsum(returns, axis=1)], axis=1)
        xp = gpu_module()
        fit = fit_windows(xp.asarray(levels), self.rows, self.horizons, self.energy, xp=xp)
        return [samossa_result(fit, i, self.rows, levels.shape[1]) for i in range(len(rs))]


def samossa_result(fit: SsaFit, i: int, rows: int, window: int) -> SamossaResult:
    """The :class:`SamossaResult` of series ``i`` of a batched fit over ``window`` levels."""
    params = {f"beta_{j + 1}": float(b) for j, b in enumerate(fit.beta[i])}
    params.update(phi=float(fit.phi[i]), rank=float(fit.rank[i]))
    return SamossaResult(
        params=pd.Series(params),
        diagnostics={
            "explained_energy": float(fit.energy[i]),
            "rank": float(fit.rank[i]),
            "residual_var": float(fit.residual_var[i]),
            "phi": float(fit.phi[i]),
            "converged": float(np.isfinite(fit.beta[i]).all()),
        },
        rows=rows,
        window=window,
        projection=np.array(fit.projection[i]),
        error_var=np.array(fit.error_var[i]),
        error_horizons=fit.horizons,
    )
