"""Value at risk and expected shortfall of a strategy's daily returns: historical, Cornish–Fisher,
and filtered historical simulation on a GARCH(1,1).

Conventions. Returns are simple daily returns of the book. ``level`` is the confidence (0.95, 0.99);
the tail probability is ``p = 1 - level``. VaR and ES are **losses**, positive fractions of the
book's value: VaR is the loss exceeded with probability ``p`` over ``horizon`` sessions, ES the mean
loss given that it is exceeded. An estimate made at the close of session ``t`` uses returns up to and
including ``t`` and is about sessions ``t + 1 .. t + horizon`` (:func:`rolling_var_es` lines them up).

Methods.

* **historical**: the empirical ``p``-quantile of the window's ``horizon``-session returns
  (overlapping sums of daily log returns, turned back into simple returns), NumPy's linear
  interpolation; ES the mean of the returns at or below it.
* **Cornish–Fisher**: the normal quantile corrected for the window's skewness ``S`` and excess
  kurtosis ``K`` (Cornish and Fisher 1938; Zangari 1996),
  ``Q(u) = z + (z^2 - 1) S / 6 + (z^3 - 3 z) K / 24 - (2 z^3 - 5 z) S^2 / 36`` with ``z = Phi^-1(u)``;
  VaR is ``-(mu + sigma Q(p))`` and ES the mean of the same quantile function over the tail,
  ``-(mu + sigma / p int_0^p Q(u) du)``, in closed form
  ``-mu + sigma phi(z_p) / p [1 + S z_p / 6 - K (1 - z_p^2) / 24 + S^2 (1 - 2 z_p^2) / 36]``
  (from ``int_(-inf)^z x^k phi`` for k = 0..3). The expansion describes a distribution only where
  ``Q`` increases (Maillard 2012, "A user's guide to the Cornish Fisher expansion"): large excess
  kurtosis, or skewness without enough of it, bends it back, and then its "ES" can fall below its
  VaR. Such windows get no Cornish–Fisher estimate (NaN); where ``Q`` increases, ES >= VaR.
  (Boudt, Peterson and Croux's 2008 "modified ES", the tail of the Edgeworth density, was tried
  first: it fell below the VaR on windows of the default strategies.) Over ``h`` sessions the daily
  moments are aggregated as for independent returns: mean ``h mu``, sd ``sqrt(h) sigma``, skewness
  ``S / sqrt(h)``, excess kurtosis ``K / h``.
* **filtered historical simulation** (Barone-Adesi, Giannopoulos and Vosper 1999): a GARCH(1,1)
  with a constant mean is fitted by Gaussian quasi-likelihood (``arch``) to the window's log
  returns; its standardised residuals ``z`` are the shocks. One session ahead, the log return's
  tail is ``mu + sigma_(t+1) q_p(z)`` and the mean of the shocks below ``q_p(z)``. Over ``h``
  sessions: ``paths`` bootstrap paths of the GARCH recursion from the next session's variance,
  shocks drawn from ``z`` with replacement, summed (seeded): arch's own bootstrap forecast. Log
  returns become simple ones before the tail is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from python_models.forecasters.garch import exact_constraint_gradients

#: The estimators, in the order the marts list them.
METHODS = ("historical", "cornish_fisher", "fhs_garch")
#: The confidence levels and horizons (sessions) the default build estimates.
LEVELS: tuple[float, ...] = (0.95, 0.99)
HORIZONS: tuple[int, ...] = (1, 10)
#: Standard deviation of a window's returns below which it has no variation (a book in cash): no
#: Cornish–Fisher moments and no GARCH.
MIN_SD = 1e-8
#: arch's optimiser prefers returns in percent.
_SCALE = 100.0


@dataclass(frozen=True)
class VarEs:
    """VaR and ES, as positive fractions of the book (a loss of 2 % is 0.02)."""

    var: float
    es: float


def _check_settings(level: float, horizon: int) -> None:
    if not 0.5 < level < 1.0:
        raise ValueError(f"level must lie in (0.5, 1), got {level}")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 session, got {horizon}")


def _check(returns, level: float, horizon: int, min_obs: int) -> np.ndarray:
    """The returns as a float array, or ValueError naming what is wrong with them or the settings."""
    _check_settings(level, horizon)
    r = np.asarray(returns, dtype=float)
    if r.ndim != 1:
        raise ValueError(f"returns must be one-dimensional, got shape {r.shape}")
    if not np.all(np.isfinite(r)):
        raise ValueError("returns contain NaN or infinite values")
    if np.any(r <= -1.0):
        raise ValueError("a return of -100 % or worse has no log return")
    if r.size < min_obs:
        raise ValueError(f"{r.size} returns are too few (need {min_obs})")
    return r


def horizon_returns(returns, horizon: int) -> np.ndarray:
    """Simple returns over every run of ``horizon`` consecutive sessions (overlapping)."""
    log = np.log1p(np.asarray(returns, dtype=float))
    cum = np.concatenate([[0.0], np.cumsum(log)])
    return np.expm1(cum[horizon:] - cum[:-horizon])


def historical(returns, level: float, horizon: int = 1) -> VarEs:
    """Historical VaR and ES (see the module docstring)."""
    r = _check(returns, level, horizon, min_obs=horizon + 20)
    var, es = tail_risk(horizon_returns(r, horizon)[None, :], level)
    return VarEs(var=float(var[0]), es=float(es[0]))


def cornish_fisher_quantile(p: float, skew, excess_kurtosis):
    """The Cornish–Fisher ``p``-quantile of a standardised distribution with these moments (scalars
    or arrays of them)."""
    z = float(stats.norm.ppf(p))
    s, k = skew, excess_kurtosis
    return z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36


def cornish_fisher_tail_mean(p: float, skew, excess_kurtosis):
    """``(1 / p) int_0^p Q(u) du`` for the Cornish–Fisher quantile function ``Q`` with these moments (a
    standardised return: negative in the left tail); scalars or arrays."""
    z = float(stats.norm.ppf(p))
    s, k = skew, excess_kurtosis
    density = float(stats.norm.pdf(z))
    return -density / p * (1 + s * z / 6 - k * (1 - z**2) / 24 + s**2 * (1 - 2 * z**2) / 36)


def cornish_fisher_valid(p: float, skew, excess_kurtosis, points: int = 64):
    """Whether the Cornish–Fisher quantile function increases over the tail it describes (``z`` from -8
    to ``Phi^-1(p)``, on ``points`` points): elementwise for arrays of moments."""
    z = np.linspace(-8.0, float(stats.norm.ppf(p)), points)
    s, k = np.asarray(skew, dtype=float)[..., None], np.asarray(excess_kurtosis, dtype=float)[..., None]
    slope = 1 + z * s / 3 + (3 * z**2 - 3) * k / 24 - (6 * z**2 - 5) * s**2 / 36
    return np.all(slope > 0, axis=-1)


def cornish_fisher(returns, level: float, horizon: int = 1) -> VarEs:
    """Cornish–Fisher VaR and ES, NaN where the expansion's tail bends back (see the module docstring)."""
    r = _check(returns, level, horizon, min_obs=30)
    p = 1.0 - level
    mu, sigma = float(r.mean()), float(r.std(ddof=1))
    skew = float(stats.skew(r, bias=False))
    kurt = float(stats.kurtosis(r, fisher=True, bias=False))
    # independent sessions: cumulants add up over the horizon
    mu_h, sigma_h, skew_h, kurt_h = horizon * mu, np.sqrt(horizon) * sigma, skew / np.sqrt(horizon), kurt / horizon
    if not cornish_fisher_valid(p, skew_h, kurt_h):
        return VarEs(var=float("nan"), es=float("nan"))
    return VarEs(
        var=float(-(mu_h + sigma_h * cornish_fisher_quantile(p, skew_h, kurt_h))),
        es=float(-(mu_h + sigma_h * cornish_fisher_tail_mean(p, skew_h, kurt_h))),
    )


@dataclass(frozen=True)
class GarchFilter:
    """A GARCH(1,1) with a constant mean fitted to a window (in percent), and its standardised residuals."""

    mu: float
    omega: float
    alpha: float
    beta: float
    shocks: np.ndarray  # standardised residuals of the window
    last_variance: float  # conditional variance of the window's last session
    last_residual: float

    @classmethod
    def fit(cls, returns) -> GarchFilter:
        """Gaussian quasi-maximum likelihood by ``arch`` on the window's log returns."""
        from arch import arch_model

        r = np.log1p(np.asarray(returns, dtype=float))
        model = arch_model(_SCALE * r, mean="Constant", vol="GARCH", p=1, q=1, dist="normal")
        with exact_constraint_gradients():  # half the fit's time; arch's own where SLSQP then fails
            res = model.fit(disp="off", show_warning=False)
        if res.convergence_flag != 0:
            res = model.fit(disp="off", show_warning=False)
        params = res.params
        variance = np.asarray(res.conditional_volatility, dtype=float) ** 2
        resid = np.asarray(res.resid, dtype=float)
        return cls(
            mu=float(params["mu"]),
            omega=float(params["omega"]),
            alpha=float(params["alpha[1]"]),
            beta=float(params["beta[1]"]),
            shocks=resid / np.sqrt(variance),
            last_variance=float(variance[-1]),
            last_residual=float(resid[-1]),
        )

    def next_variance(self, variance: float, residual: float) -> float:
        return self.omega + self.alpha * residual**2 + self.beta * variance

    def filtered(self, returns) -> tuple[np.ndarray, np.ndarray]:
        """The variances (percent²) the fitted parameters give each session of ``returns`` *ahead* of
        it, continuing from the window's last session, and the residuals: the filter the daily
        estimates between refits run with fixed parameters."""
        resid = _SCALE * np.log1p(np.asarray(returns, dtype=float)) - self.mu
        variance = np.empty(resid.size + 1)
        variance[0] = self.next_variance(self.last_variance, self.last_residual)
        for t in range(resid.size):
            variance[t + 1] = self.next_variance(variance[t], resid[t])
        return variance, resid


def fhs_one_session(filter_: GarchFilter, variances: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """One-session FHS VaR and ES for each next-session variance (percent²) in ``variances``."""
    z = filter_.shocks
    q = float(np.quantile(z, 1.0 - level))
    tail = z[z <= q]
    sd = np.sqrt(np.asarray(variances, dtype=float))[:, None]
    var = -np.expm1((filter_.mu + sd[:, 0] * q) / _SCALE)
    es = -np.mean(np.expm1((filter_.mu + sd * tail[None, :]) / _SCALE), axis=1)
    return var, es


def fhs_paths(
    filter_: GarchFilter, variances: np.ndarray, horizon: int, paths: int, rng: np.random.Generator
) -> np.ndarray:
    """Simple returns over ``horizon`` sessions of ``paths`` bootstrap paths of the GARCH recursion from
    each next-session variance in ``variances``: (len(variances), paths). The shocks are drawn once,
    ``(paths, horizon)`` from the filter's standardised residuals with replacement, and shared by every
    start: common random numbers, so that from one session to the next the estimate moves with the
    variance, not with the simulation's noise."""
    draws = filter_.shocks[rng.integers(0, filter_.shocks.size, size=(paths, horizon))]
    h2 = np.repeat(np.asarray(variances, dtype=float)[:, None], paths, axis=1)
    total = np.zeros_like(h2)
    for step in range(horizon):
        eps = np.sqrt(h2) * draws[None, :, step]
        total += filter_.mu + eps
        h2 = filter_.omega + filter_.alpha * eps**2 + filter_.beta * h2
    return np.expm1(total / _SCALE)  # percent log returns summed, then the simple return


def tail_risk(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """VaR and ES of each row of ``samples`` (simple returns: historical, scenario or simulated): the
    empirical quantile at ``1 - level`` (NumPy's linear interpolation) and the mean at or below it,
    as positive losses."""
    q = np.quantile(samples, 1.0 - level, axis=1)
    return -q, -np.nanmean(np.where(samples <= q[:, None], samples, np.nan), axis=1)


def fhs_garch(returns, level: float, horizon: int = 1, paths: int = 2000, seed: int = 0) -> VarEs:
    """Filtered historical simulation on a GARCH(1,1) fitted to ``returns`` (see the module docstring)."""
    r = _check(returns, level, horizon, min_obs=100)
    fitted = GarchFilter.fit(r)
    variance = np.array([fitted.next_variance(fitted.last_variance, fitted.last_residual)])
    if horizon == 1:
        var, es = fhs_one_session(fitted, variance, level)
    else:
        var, es = tail_risk(fhs_paths(fitted, variance, horizon, paths, np.random.default_rng(seed)), level)
    return VarEs(var=float(var[0]), es=float(es[0]))


def rolling_var_es(
    returns: pd.Series,
    window: int = 252,
    levels: Sequence[float] = LEVELS,
    horizons: Sequence[int] = HORIZONS,
    refit_every: int = 63,
    paths: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Every method's VaR and ES at the close of each session with ``window`` returns behind it.

    The historical and Cornish–Fisher estimates use the ``window`` returns ending at the session
    (computed for every session at once: the same numbers as :func:`historical` and
    :func:`cornish_fisher` on each window). The GARCH is refitted every ``refit_every`` sessions on the
    window ending there and, between refits, filters each new return with its parameters fixed (its
    shocks stay those of the fit), as the walk-forward forecasters do. A block's shocks are drawn from
    a generator seeded with ``seed`` plus the refit's position (:func:`fhs_paths`), so a rerun gives
    the same numbers and the refit session's estimate is :func:`fhs_garch`'s with that seed.

    Returns
    -------
    DataFrame
        One row per (date, method, level, horizon): ``date`` (the close the estimate is made at),
        ``method``, ``level``, ``horizon``, ``var``, ``es``.
    """
    if not isinstance(returns, pd.Series):
        raise TypeError("returns must be a pandas Series indexed by date")
    if window < 100 or refit_every < 1:
        raise ValueError(
            f"window must be at least 100 sessions and refit_every at least 1, got {window}, {refit_every}"
        )
    for level in levels:
        for horizon in horizons:
            _check_settings(level, horizon)
    values = _check(returns.to_numpy(), max(levels), max(horizons), min_obs=window)
    dates = returns.index[window - 1 :]
    windows = np.lib.stride_tricks.sliding_window_view(values, window)  # (sessions, window)
    frames = []
    for horizon in horizons:
        sums = np.lib.stride_tricks.sliding_window_view(horizon_returns(values, horizon), window - horizon + 1)
        for level in levels:
            frames.append(_frame(dates, "historical", level, horizon, *tail_risk(sums, level)))
    mu, sigma = windows.mean(axis=1), windows.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # a window without variation: NaN moments
        skew = stats.skew(windows, axis=1, bias=False)
        kurt = stats.kurtosis(windows, axis=1, fisher=True, bias=False)
    skew, kurt = np.where(sigma > MIN_SD, skew, np.nan), np.where(sigma > MIN_SD, kurt, np.nan)
    for horizon in horizons:
        mu_h, sigma_h, skew_h, kurt_h = horizon * mu, np.sqrt(horizon) * sigma, skew / np.sqrt(horizon), kurt / horizon
        for level in levels:
            p = 1.0 - level
            valid = np.where(cornish_fisher_valid(p, skew_h, kurt_h), 1.0, np.nan)
            g = cornish_fisher_quantile(p, skew_h, kurt_h) * valid
            tail_mean = cornish_fisher_tail_mean(p, skew_h, kurt_h) * valid
            frames.append(
                _frame(dates, "cornish_fisher", level, horizon, -(mu_h + sigma_h * g), -(mu_h + sigma_h * tail_mean))
            )
    # the GARCH: refitted at the first session of each block of refit_every, filtered through the block
    for start in range(window, values.size + 1, refit_every):
        stop = min(start + refit_every, values.size + 1)  # sessions start..stop-1 (closes at end - 1)
        block = dates[start - window : stop - window]
        fitted = GarchFilter.fit(values[start - window : start]) if _varies(values[start - window : start]) else None
        if fitted is None:  # a window without variation (a book in cash) has no GARCH: no estimate
            for horizon in horizons:
                for level in levels:
                    frames.append(_frame(block, "fhs_garch", level, horizon, np.full(len(block), np.nan), np.nan))
            continue
        variances, _ = fitted.filtered(values[start : stop - 1])
        for horizon in horizons:
            simulated = (
                None
                if horizon == 1
                else fhs_paths(fitted, variances, horizon, paths, np.random.default_rng(seed + start))
            )
            for level in levels:
                var, es = (
                    fhs_one_session(fitted, variances, level) if simulated is None else tail_risk(simulated, level)
                )
                frames.append(_frame(block, "fhs_garch", level, horizon, var, es))
    return pd.concat(frames, ignore_index=True)


def _varies(window: np.ndarray) -> bool:
    """Whether a window's returns vary enough for a GARCH (its standard deviation above :data:`MIN_SD`)."""
    return bool(np.std(window) > MIN_SD)


def _frame(dates: pd.Index, method: str, level: float, horizon: int, var: np.ndarray, es) -> pd.DataFrame:
    return pd.DataFrame({"date": dates, "method": method, "level": level, "horizon": horizon, "var": var, "es": es})
