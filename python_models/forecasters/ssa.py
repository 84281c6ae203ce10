"""SAMoSSA: singular spectrum analysis on the Page matrix plus an AR model of the residual.

After Alomar, Dahleh, Mann and Shah, "SAMoSSA: Multivariate Singular Spectrum Analysis
with Stochastic Autoregressive Noise" (NeurIPS 2023), for one series of log price levels:

1. the training window's levels, centred on their mean, fill a Page matrix
   (``L`` rows, non-overlapping columns, the latest observation in the last cell);
2. its leading singular components de-noise it and give the deterministic part ``f``: those
   above Gavish and Donoho's (2014) hard threshold for a matrix of unknown noise level,
   ``omega(beta) * median(singular values)`` (``rank_rule="threshold"``, the default), or as many as
   capture ``energy`` of the squared Frobenius norm (``"energy"``, which kept one component, the
   trend, in every window of the default data);
3. the linear recurrent formula of that subspace (``beta``, ``L - 1`` weights) forecasts
   ``f`` one step from the ``L - 1`` values before it; roots of its characteristic
   polynomial outside the unit disk are pulled onto it (``stabilise``), so no forecast
   explodes;
4. the residual ``x - f`` is the noise. An AR(1) fitted by least squares to the Page matrix's
   residuals (``phi``) is kept as a diagnostic. The forecast weighs the signal's extrapolated move
   and the current residual by each horizon's least squares on the training window's own origins
   (``residual="direct"``, the default; the signal's weight kept in [0, 1]), or by ``1`` and
   ``phi^h - 1``, the AR(1)'s decay (``"ar1"``, the paper's model).

Levels are centred: the training window's mean level is 0, and a forecast from origin
``t`` centres by the mean of the same number of levels ending at ``t`` (nothing later).
From there ``f`` is continued by the recurrent formula from the last ``L - 1`` de-noised
levels, ``e_t = x_t - f_t`` is the current residual, and the forecast cumulative log return over
``h`` sessions is ``a_h (f_(t+h) - f_t) + c_h e_t``. Under the AR(1), ``a_h = 1`` and
``c_h = phi^h - 1`` (the forecast level ``f_(t+h) + phi^h e_t``). Its variance is the mean squared
error of that same forecast at every in-sample origin of the training window (empirical, per
horizon).

Why the direct weights. The Page matrix's columns do not overlap, so its residuals restart every
``L`` sessions and their AR(1) says the deviation from the de-noised level fades within days; on a
price that is close to a random walk the deviation is permanent. On the default data that AR(1)
turned SAMoSSA into a bet on reversion to the 20-session mean, with 1.46 times the random walk's
MSE at h = 1 (``benchmarks/ssa_rank_rules.py``). Fitting each horizon's two weights on the
in-sample forecasts themselves lets the window say how much of the signal's move, and of the
residual's reversion, its own history bore out. (In sample: the subspace and the recurrent formula
were estimated on the same window, so the signal's weight errs high, not low.)

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
    signal_weight: np.ndarray  # (B, H): a_h, the weight of the signal's extrapolated move
    noise_weight: np.ndarray  # (B, H): c_h, the weight of the current residual


#: How the kept components are chosen (:func:`kept_rank`).
RANK_RULES = ("threshold", "energy")
#: How the forecast weighs the signal's move and the residual (:func:`_forecast_weights`).
RESIDUAL_MODELS = ("direct", "ar1")


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


def _forecast_parts(window, projection, beta, hs: tuple[int, ...], xp):
    """The signal's extrapolated moves (B, n, H) and the current residuals (B, n) from windows
    (B, n, L) of the L centred levels ending at each origin. The window is projected on the kept
    components (its de-noised values f); the recurrent formula continues f from its last L - 1
    values: the move is ``f_(t+h) - f_t``, the residual ``e_t = x_t - f_t``."""
    now = window[..., -1]
    denoised = window @ projection.transpose(0, 2, 1)  # batched BLAS: (B, n, L) @ (B, L, L)
    deterministic = denoised[..., 1:] @ _horizon_weights(beta, hs, xp)
    return deterministic - denoised[..., -1:], now - denoised[..., -1]


def _forecast_paths(window, projection, beta, signal_weight, noise_weight, hs: tuple[int, ...], xp):
    """Cumulative-return forecasts (B, n, H) for horizons ``hs``: ``a_h (f_(t+h) - f_t) + c_h e_t``
    with the weights (B, H) of each window (:func:`_forecast_parts`)."""
    move, residual = _forecast_parts(window, projection, beta, hs, xp)
    return signal_weight[:, None, :] * move + noise_weight[:, None, :] * residual[..., None]


def _forecast_weights(move, residual, realised, phi, hs: tuple[int, ...], model: str, xp):
    """The weights (a_h, c_h), (B, H) each, of the forecast ``a_h move + c_h residual``.

    ``"ar1"``: ``a_h = 1`` and ``c_h = phi^h - 1``. ``"direct"``: for each window and horizon, the
    least squares of the realised h-session moves on the two at the in-sample origins, with ``a_h``
    kept in [0, 1] (none to all of the signal's extrapolation: a negative weight would bet against
    the signal it was fitted to, a weight above one extrapolate it further than the window bore
    out). Minimising over ``c`` first leaves a convex quadratic in ``a``, so the constrained ``a``
    is the unconstrained one clipped, and ``c`` its least squares given ``a``.
    """
    b, h = phi.shape[0], len(hs)
    if model == "ar1":
        return xp.ones((b, h)), phi[:, None] ** xp.asarray(hs)[None, :] - 1.0
    s_mm = xp.sum(move * move, axis=1)  # (B, H): sums over the in-sample origins
    s_mr = xp.sum(move * residual[..., None], axis=1)
    s_rr = xp.broadcast_to(xp.sum(residual * residual, axis=1)[:, None], s_mm.shape)
    s_my = xp.sum(move * realised, axis=1)
    s_ry = xp.sum(residual[..., None] * realised, axis=1)
    det = s_mm * s_rr - s_mr**2
    tiny = 1e-12 * xp.maximum(s_mm * s_rr, 1e-300)
    # collinear or empty regressors: the signal alone, by its own least squares
    a = xp.where(
        det > tiny, (s_rr * s_my - s_mr * s_ry) / xp.where(det > tiny, det, 1.0), s_my / xp.maximum(s_mm, 1e-300)
    )
    a = xp.clip(a, 0.0, 1.0)
    c = xp.where(s_rr > 1e-300, (s_ry - a * s_mr) / xp.maximum(s_rr, 1e-300), 0.0)
    return a, c


def _windows_at(levels, origins, rows: int, xp):
    """The ``rows`` levels ending at each origin: (B, n, rows) from levels (B, T), origins (B, n)."""
    idx = origins[..., None] + xp.arange(-(rows - 1), 1)
    b, n, _ = idx.shape
    return xp.take_along_axis(levels, idx.reshape(b, -1), axis=1).reshape(b, n, rows)


def _in_sample_fit(x, projection, beta, phi, rows, hs, first, last, model: str, xp, chunk: int = 256):
    """Each window's forecast weights (:func:`_forecast_weights`) and the mean squared error of its
    h-session forecast at every in-sample origin ``first..last``: (a, c, error variance), (B, H) each
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
        move, residual = _forecast_parts(window, projection[part], beta[part], hs, xp)
        now = xs[:, first : last + 1]
        realised = xp.stack([xs[:, first + h : last + 1 + h] for h in hs], axis=-1) - now[..., None]
        a, c = _forecast_weights(move, residual, realised, phi[part], hs, model, xp)
        paths = a[:, None, :] * move + c[:, None, :] * residual[..., None]
        out.append((a, c, xp.mean((paths - realised) ** 2, axis=1)))
    return tuple(xp.concatenate([o[i] for o in out]) for i in range(3))


def check_variant(rank_rule: str, residual: str) -> None:
    """ValueError unless ``rank_rule`` is one of :data:`RANK_RULES` and ``residual`` one of
    :data:`RESIDUAL_MODELS`."""
    if rank_rule not in RANK_RULES or residual not in RESIDUAL_MODELS:
        raise ValueError(
            f"rank_rule must be one of {RANK_RULES} and residual one of {RESIDUAL_MODELS}, "
            f"got {rank_rule!r} and {residual!r}"
        )


def kept_rank(eigval, rows: int, columns: int, energy: float, rule: str, xp):
    """Components kept (B,) from the Gram matrices' eigenvalues (B, L), largest first.

    ``"threshold"``: the singular values above Gavish and Donoho's (2014) optimal hard threshold for
    an ``L x columns`` matrix with noise of unknown level, ``omega(beta) * median(singular values)``
    with ``beta = min / max`` of the two sides and their approximation
    ``omega(beta) = 0.56 beta^3 - 0.95 beta^2 + 1.82 beta + 1.43``. ``"energy"``: as many as capture
    ``energy`` of the squared norm. Either way at least one and at most ``L - 1`` (the recurrent
    formula needs a rank below L).
    """
    if rule == "energy":
        total = xp.sum(eigval, axis=1, keepdims=True)
        share = xp.cumsum(eigval, axis=1) / xp.where(total > 0, total, 1.0)
        rank = xp.sum(share < energy - 1e-12, axis=1) + 1
    else:
        sides = min(rows, columns)
        aspect = sides / max(rows, columns)
        omega = 0.56 * aspect**3 - 0.95 * aspect**2 + 1.82 * aspect + 1.43
        singular = xp.sqrt(eigval[:, :sides])
        rank = xp.sum(singular > omega * xp.median(singular, axis=1, keepdims=True), axis=1)
    return xp.clip(rank, 1, rows - 1)


def fit_windows(
    levels,
    rows: int,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    energy: float = 0.9,
    xp=None,
    shared: bool = False,
    rank_rule: str = "threshold",
    residual: str = "direct",
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
        Share of the squared norm the kept components must capture (``rank_rule="energy"``).
    xp : module, optional
        numpy or cupy; by default the module of ``levels``.
    shared : bool
        Multivariate SSA (mSSA): the rows are different series over the same sessions, and
        one subspace is fitted to their Page matrices stacked side by side (its Gram matrix
        is the sum of theirs), so every series shares the kept components, the rank and the
        recurrent formula; the residual model and error variances stay per series.
    rank_rule : {"threshold", "energy"}
        How the kept components are chosen (:func:`kept_rank`).
    residual : {"direct", "ar1"}
        How the forecast weighs the signal's move and the residual (:func:`_forecast_weights`).
    """
    check_variant(rank_rule, residual)
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
    columns = page.shape[2] * (b if shared else 1)
    rank = kept_rank(eigval, rows, columns, energy, rank_rule, xp)
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
    # the forecast's weights and errors at every in-sample origin with L - 1 lags and h_max ahead
    h_max = max(hs)
    first, last = rows - 1, t - 1 - h_max
    if last < first:
        raise ValueError(f"windows of {t} sessions are too short for {rows} rows and horizon {h_max}")
    projection = uk @ uk.transpose(0, 2, 1)
    signal_weight, noise_weight, error_var = _in_sample_fit(
        x, projection, beta, phi, rows, hs, first, last, residual, xp
    )
    return SsaFit(
        beta=to_numpy(beta),
        projection=to_numpy(projection),
        phi=to_numpy(phi),
        rank=to_numpy(rank),
        energy=to_numpy(xp.take_along_axis(share, (rank - 1)[:, None], axis=1)[:, 0]),
        residual_var=to_numpy(xp.var(resid, axis=1)),
        error_var=to_numpy(error_var),
        horizons=hs,
        signal_weight=to_numpy(signal_weight),
        noise_weight=to_numpy(noise_weight),
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


def fit_windows_naive(
    levels: np.ndarray,
    rows: int,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    energy: float = 0.9,
    rank_rule: str = "threshold",
    residual: str = "direct",
) -> SsaFit:
    """The same fit one window at a time, the basis from ``numpy.linalg.svd`` of each Page
    matrix and the direct weights from ``numpy.linalg.lstsq``: the reference the batched version
    is tested and benchmarked against."""
    hs = validate_horizons(horizons)
    fits = []
    for window in np.asarray(levels, dtype=float):
        x = (window - window.mean())[None, :]
        page = page_matrices(x, rows)
        u, s, _ = np.linalg.svd(page[0])
        share = np.cumsum(s**2) / np.sum(s**2)
        if rank_rule == "energy":
            rank = int(np.searchsorted(share, energy - 1e-12)) + 1
        else:
            aspect = min(page[0].shape) / max(page[0].shape)
            rank = int(np.sum(s > (0.56 * aspect**3 - 0.95 * aspect**2 + 1.82 * aspect + 1.43) * np.median(s)))
        rank = min(max(rank, 1), rows - 1)
        keep = (np.arange(rows) < rank).astype(float)[None, :]
        beta = stabilise(_recurrent_weights(u[None], keep, np), np)
        uk = u[None] * keep[:, None, :]
        projection = uk @ uk.transpose(0, 2, 1)
        used = page.shape[1] * page.shape[2]
        resid = x[:, x.shape[1] - used :] - (projection @ page).transpose(0, 2, 1).reshape(1, used)
        phi = np.clip(np.sum(resid[:, 1:] * resid[:, :-1], axis=1) / np.sum(resid[:, :-1] ** 2, axis=1), -0.99, 0.99)
        first, last = rows - 1, x.shape[1] - 1 - max(hs)
        origins = np.arange(first, last + 1)
        windows = np.stack([x[0, o - rows + 1 : o + 1] for o in origins])[None]
        move, current = _forecast_parts(windows, projection, beta, hs, np)
        weights, errors = [], []
        for j, h in enumerate(hs):
            realised = x[0, origins + h] - x[0, origins]
            if residual == "ar1":
                a, c = 1.0, float(phi[0]) ** h - 1.0
            else:
                a, c = np.linalg.lstsq(np.column_stack([move[0, :, j], current[0]]), realised, rcond=None)[0]
                if not 0.0 <= a <= 1.0:  # on the bound, the residual's weight given it
                    a = min(max(a, 0.0), 1.0)
                    c = float(np.linalg.lstsq(current[0][:, None], realised - a * move[0, :, j], rcond=None)[0][0])
            weights.append((a, c))
            errors.append(np.mean((a * move[0, :, j] + c * current[0] - realised) ** 2))
        fits.append((beta[0], projection[0], phi[0], rank, share[rank - 1], resid.var(), errors, *np.array(weights).T))

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
        signal_weight=stacked(7),
        noise_weight=stacked(8),
    )


@dataclass(kw_only=True)  # keyword-only: the fitted arrays have no default, FitResult's fields do
class SamossaResult(FitResult):
    """One SAMoSSA fit; ``params`` holds beta (``beta_1`` oldest), phi and the rank."""

    rows: int = 21
    window: int = 0  # levels in the training window (one more than its returns)
    projection: np.ndarray
    error_var: np.ndarray
    error_horizons: tuple[int, ...] = ()
    #: a_h and c_h per fitted horizon (:func:`_forecast_weights`); None in a fit stored before
    #: they existed, which forecasts with its AR(1): ``1`` and ``phi^h - 1``
    signal_weight: np.ndarray | None = None
    noise_weight: np.ndarray | None = None

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
        fitted = [self.error_horizons.index(h) for h in hs]
        if self.signal_weight is None or self.noise_weight is None:
            signal_weight, noise_weight = np.ones(len(hs)), float(self.params["phi"]) ** np.asarray(hs) - 1.0
        else:
            signal_weight, noise_weight = self.signal_weight[fitted], self.noise_weight[fitted]
        window = _windows_at(levels[None, :], at[None, :], self.rows, np) - centre[None, :, None]
        mean = _forecast_paths(window, self.projection[None], beta, signal_weight[None], noise_weight[None], hs, np)[0]
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
        Share of the squared norm the kept singular components capture (``rank_rule="energy"``).
    horizons : sequence of int
        Horizons whose error variance is estimated at fit time (forecasts are limited to them).
    rank_rule : {"threshold", "energy"}
        How the kept components are chosen (:func:`kept_rank`).
    residual : {"direct", "ar1"}
        How the forecast weighs the signal's move and the residual (:func:`_forecast_weights`).
    """

    def __init__(
        self,
        rows: int = 21,
        energy: float = 0.9,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        rank_rule: str = "threshold",
        residual: str = "direct",
    ) -> None:
        if rows < 3:
            raise ValueError(f"rows must be at least 3, got {rows}")
        check_variant(rank_rule, residual)
        self.rows, self.energy, self.horizons = rows, energy, validate_horizons(horizons)
        self.rank_rule, self.residual = rank_rule, residual
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
        fit = fit_windows(
            xp.asarray(levels),
            self.rows,
            self.horizons,
            self.energy,
            xp=xp,
            rank_rule=self.rank_rule,
            residual=self.residual,
        )
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
            # how much of the signal's extrapolated move, and of the residual, each horizon keeps
            **{f"signal_weight_{h}": float(fit.signal_weight[i, j]) for j, h in enumerate(fit.horizons)},
            **{f"noise_weight_{h}": float(fit.noise_weight[i, j]) for j, h in enumerate(fit.horizons)},
            "converged": float(np.isfinite(fit.beta[i]).all()),
        },
        rows=rows,
        window=window,
        projection=np.array(fit.projection[i]),
        error_var=np.array(fit.error_var[i]),
        error_horizons=fit.horizons,
        signal_weight=np.array(fit.signal_weight[i]),
        noise_weight=np.array(fit.noise_weight[i]),
    )
