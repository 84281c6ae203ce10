"""Forecast accuracy metrics and the Diebold–Mariano test.

Conventions: ``y_true`` and ``y_pred`` are simple returns over the same horizon; errors
are ``y_pred - y_true``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(y_true, dtype=float)
    b = np.asarray(y_pred, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-d of equal length, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("no observations to score")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("y_true and y_pred must be finite; drop unrealised rows first")
    return a, b


def rmse(y_true, y_pred) -> float:
    """Root mean squared error."""
    a, b = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((b - a) ** 2)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error."""
    a, b = _pair(y_true, y_pred)
    return float(np.mean(np.abs(b - a)))


def smape(y_true, y_pred) -> float:
    """Symmetric MAPE in percent: ``100 * mean(2|e| / (|y| + |ŷ|))``; 0/0 terms count 0."""
    a, b = _pair(y_true, y_pred)
    denom = np.abs(a) + np.abs(b)
    terms = np.divide(2.0 * np.abs(b - a), denom, out=np.zeros_like(a), where=denom > 0)
    return float(100.0 * terms.mean())


def sign_hits(y_true, y_pred):
    """Elementwise: does the forecast's sign match the realised sign (zeros match only zeros)?
    Keeps the input's type (arrays stay arrays, pandas objects keep their index)."""
    return np.sign(y_pred) == np.sign(y_true)


def directional_accuracy(y_true, y_pred) -> float:
    """Share of forecasts whose sign matches the realised sign (zeros match only zeros)."""
    a, b = _pair(y_true, y_pred)
    return float(np.mean(sign_hits(a, b)))


def tracking_error(y_true, y_pred) -> float:
    """Standard deviation (ddof=1) of the forecast errors: dispersion net of bias."""
    a, b = _pair(y_true, y_pred)
    return float(np.std(b - a, ddof=1)) if a.size > 1 else float("nan")


def diebold_mariano(y_true, pred_model, pred_baseline, horizon: int = 1) -> tuple[float, float]:
    """Diebold–Mariano test of equal squared-error loss, with fixed-smoothing inference.

    ``d_t = e_model^2 - e_baseline^2``; see :func:`dm_test` for the long-run variance and the
    reference distribution. Negative statistics mean the model has the lower loss. Returns
    ``(nan, nan)`` when the loss differential is identically zero.
    """
    a, m = _pair(y_true, pred_model)
    _, base = _pair(y_true, pred_baseline)
    return dm_test((m - a) ** 2 - (base - a) ** 2, horizon)


def dm_bandwidth(n: int, horizon: int) -> int:
    """Fourier frequencies the Diebold–Mariano test's long-run variance averages over.

    ``floor(sqrt(n))``, but no more than ``n / (8 h)``: forecasts ``h`` sessions ahead made every
    session overlap, and the loss differential's spectrum falls off over frequencies of order
    ``1 / h``, so a band reaching them understates the long-run variance. At least one frequency.
    Chosen on simulated null series (``benchmarks/dm_size.py`` with this rule edited, docs/models.md):
    against Coroneo and Iacone's ``n^(1/3)`` the wider band kept the size better where the differential's variance is
    persistent (at h = 1 the rejection rate at 5 % up to 7.5 % against 8.6 %), and without the cap
    the rate at h = 63 reached 14 % on 500 sessions (25 % on 250)."""
    return max(1, min(math.isqrt(n), n // (8 * horizon)))


def dm_test(d, horizon: int = 1) -> tuple[float, float]:
    """Diebold–Mariano statistic and two-sided p-value of a loss differential series ``d`` in
    time order, with fixed-smoothing asymptotics (Coroneo and Iacone, 2020).

    The long-run variance of ``d`` is the mean of its periodogram over the ``m`` lowest Fourier
    frequencies (``m`` from :func:`dm_bandwidth`), a weighted-periodogram estimate that is never
    negative; with ``m`` held fixed the statistic ``mean(d) / sqrt(lrv / n)`` is Student's t with
    ``2 m`` degrees of freedom under the null of equal expected loss. Unlike the truncated-kernel
    estimate with ``h - 1`` lags and the Harvey–Leybourne–Newbold correction it replaces, it keeps
    its size at long horizons: on simulated null series of 500 to 4,000 sessions the two-sided
    rejection rate at 5 % stays within 3-8 % at h = 1, 5, 21 and 63, where the old test rejected up
    to 17 % at h = 63 (``benchmarks/dm_size.py``; tested in ``test_dm_size.py``). The price is power:
    few frequencies at long horizons on short series make a wide t distribution.
    Returns ``(nan, nan)`` when ``d`` is constant (no evidence either way).
    """
    d = np.asarray(d, dtype=float)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    n = d.size
    if n < 3:
        raise ValueError(f"Diebold–Mariano needs at least 3 observations, got {n}")
    if not np.all(np.isfinite(d)):
        raise ValueError("the loss differential must be finite")
    m = dm_bandwidth(n, horizon)
    # |sum_t dc_t exp(-2 pi i j t / n)|^2 / n = 2 pi times the periodogram at frequency j
    coefficients = np.fft.rfft(d - d.mean())[1 : m + 1]
    lrv = float(np.mean(coefficients.real**2 + coefficients.imag**2)) / n
    if lrv == 0.0:
        return float("nan"), float("nan")
    stat = float(d.mean() / np.sqrt(lrv / n))
    return stat, float(2.0 * stats.t.sf(abs(stat), df=2 * m))


def ljung_box(errors, horizon: int = 1, lags: int = 10) -> tuple[float, float]:
    """Ljung–Box Q and its chi-squared p-value on forecast errors in time order.

    Errors of h-session forecasts made every session overlap, so they are MA(h - 1) even
    for an efficient forecast; the test uses every h-th error (non-overlapping) and at most
    a fifth of them as lags. NaN when fewer than 10 remain.
    """
    e = np.asarray(errors, dtype=float)[:: max(1, int(horizon))]
    n = e.size
    lags = min(lags, n // 5)
    if n < 10 or lags < 1:
        return float("nan"), float("nan")
    d = e - e.mean()
    denom = float(d @ d)
    if denom == 0:
        return float("nan"), float("nan")
    acf = np.array([float(d[k:] @ d[:-k]) / denom for k in range(1, lags + 1)])
    q = n * (n + 2) * float(np.sum(acf**2 / (n - np.arange(1, lags + 1))))
    return q, float(stats.chi2.sf(q, lags))


def score_forecasts(y_true, y_pred, y_baseline, horizon: int) -> dict[str, float]:
    """Every accuracy metric of one model against the realised values and the baseline."""
    a, b = _pair(y_true, y_pred)
    dm_stat, dm_p = diebold_mariano(a, b, y_baseline, horizon)
    return {
        "n_obs": int(a.size),
        "rmse": rmse(a, b),
        "mae": mae(a, b),
        "smape": smape(a, b),
        "directional_accuracy": directional_accuracy(a, b),
        "tracking_error": tracking_error(a, b),
        "dm_stat": dm_stat,
        "dm_pvalue": dm_p,
        "ljung_box_pvalue": ljung_box(a - b, horizon)[1],
    }


def score_panel(forecasts, baseline: str):
    """Scores per (model, ticker, horizon) on realised rows, each against ``baseline``.

    ``forecasts`` is a long frame with ``model, ticker, asof_date, horizon, y_pred,
    y_true``. The baseline's own Diebold–Mariano fields are NaN.
    """
    import pandas as pd

    done = forecasts.dropna(subset=["y_true", "y_pred"])
    base = done[done["model"] == baseline][["ticker", "asof_date", "horizon", "y_pred"]].rename(
        columns={"y_pred": "y_base"}
    )
    if base.empty:
        raise ValueError(f"no realised forecasts of the baseline {baseline!r} to score against")
    rows = []
    joined = done.merge(base, on=["ticker", "asof_date", "horizon"], how="inner")
    joined = joined.sort_values("asof_date")  # time order within each group, for Ljung–Box
    for (model, ticker, horizon), g in joined.groupby(["model", "ticker", "horizon"], sort=True):
        if len(g) < 3:
            continue
        rows.append(
            {
                "model": model,
                "ticker": ticker,
                "horizon": int(horizon),
                **score_forecasts(g["y_true"].to_numpy(), g["y_pred"].to_numpy(), g["y_base"].to_numpy(), int(horizon)),
            }
        )
    return pd.DataFrame(rows)
