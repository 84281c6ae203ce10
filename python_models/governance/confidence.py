"""Confidence of a trading signal: a documented blend of evidence, in [0, 1].

Every component is scaled so that 0.5 means "no evidence either way" and 1 means strong
evidence for the signal; the confidence is their weighted mean (weights in
:data:`CONFIDENCE_WEIGHTS`, summing to one), so it lies in [0, 1] and equals 0.5 when
nothing speaks for or against the signal. The design's trading threshold of 0.55 therefore
asks for evidence beyond a coin flip.

=============  =====  ==========================================================================
component      share  definition (every input known at the signal's close)
=============  =====  ==========================================================================
probability    0.20   ``Phi(|mu| / sigma)``: the forecast's own probability of the right sign
accuracy       0.25   trailing directional accuracy of the model for this ticker and horizon
                      (last ``window`` realised forecasts; 0.5 before ``min_obs`` of them)
agreement      0.15   share of the single models whose forecast has the signal's sign
width          0.10   ``1 / (1 + w / median(w))``: interval width against its trailing median
fit            0.10   ``0.5 + clip(5 R2, -0.5, 0.5)``: trailing out-of-sample explained variance
                      ``R2 = 1 - sum(e^2) / sum(y^2)`` of the model (0.5 before ``min_obs``)
variance_ratio 0.10   ``Phi(|z|)``: Lo–MacKinlay evidence against a random walk (z of VR(10))
classifier     0.10   the calibrated probability of the signal's sign from the direction classifier
                      at the signal horizon (:mod:`python_models.classification`): ``P(up)`` for a
                      long signal, ``1 - P(up)`` for a short one (0.5 without a probability)
=============  =====  ==========================================================================

Fit diagnostics are out-of-sample explained variance, not AIC: AIC compares models fitted
to the same data and has no scale that carries across models and tickers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from python_models.evaluation.metrics import sign_hits
from python_models.grouped import lag, trailing

CONFIDENCE_WEIGHTS = {
    "probability": 0.20,
    "accuracy": 0.25,
    "agreement": 0.15,
    "width": 0.10,
    "fit": 0.10,
    "variance_ratio": 0.10,
    "classifier": 0.10,
}
NEUTRAL = 0.5


def trailing_skill(
    y_pred: pd.Series,
    y_true: pd.Series,
    horizon: int,
    window: int = 252,
    min_obs: int = 63,
    by: pd.Series | None = None,
) -> pd.DataFrame:
    """Trailing directional accuracy and explained-variance score per origin.

    ``y_pred`` and ``y_true`` are indexed by consecutive origins of one (model, ticker,
    horizon); the value at origin ``i`` is realised ``horizon`` rows later, so row ``i``
    uses origins up to ``i - horizon`` only. Returns columns ``accuracy`` and ``fit``
    (both neutral 0.5 until ``min_obs`` realised forecasts exist). With ``by`` (a label per
    row, each label's rows contiguous and in order), each label's rows are such a series of their own: the
    windows and the lag stay within a label.
    """
    if horizon < 1 or window < 1 or min_obs < 1:
        raise ValueError("horizon, window and min_obs must be positive")
    done = y_true.notna() & y_pred.notna()
    hit = sign_hits(y_true, y_pred).astype(float).where(done)
    accuracy = trailing(hit, "mean", window, min_obs, by).pipe(lag, horizon, by)
    # both sums in one grouped call (each column is summed on its own): a grouped rolling costs per call
    squares = pd.DataFrame({"sse": ((y_pred - y_true) ** 2).where(done), "sst": (y_true**2).where(done)})
    sums = trailing(squares, "sum", window, min_obs, by).pipe(lag, horizon, by)
    sse, sst = sums["sse"], sums["sst"]
    r2 = 1.0 - sse / sst.where(sst > 0)
    fit = NEUTRAL + (5.0 * r2).clip(-0.5, 0.5)
    return pd.DataFrame({"accuracy": accuracy.fillna(NEUTRAL), "fit": fit.fillna(NEUTRAL)}, index=y_pred.index)


def width_score(width: pd.Series, window: int = 252, min_obs: int = 21, by: pd.Series | None = None) -> pd.Series:
    """``1 / (1 + w / median)`` with the median of the trailing ``window`` widths (this one included);
    ``by`` as in :func:`trailing_skill`."""
    median = trailing(width, "median", window, min_obs, by)
    return (1.0 / (1.0 + width / median.where(median > 0))).fillna(NEUTRAL)


def signal_confidence(components: pd.DataFrame, weights: dict[str, float] | None = None) -> pd.Series:
    """Weighted mean of the components (each in [0, 1]; missing ones count as neutral).

    Raises
    ------
    ValueError
        If a component is missing from ``components``, lies outside [0, 1], or the
        weights do not sum to one.
    """
    weights = weights or CONFIDENCE_WEIGHTS
    if not np.isclose(sum(weights.values()), 1.0):
        raise ValueError(f"confidence weights must sum to 1, got {sum(weights.values())}")
    missing = set(weights) - set(components.columns)
    if missing:
        raise ValueError(f"confidence components missing: {sorted(missing)}")
    values = components[list(weights)].astype(float).fillna(NEUTRAL)
    if ((values < 0) | (values > 1)).any().any():
        raise ValueError("confidence components must lie in [0, 1]")
    return values @ pd.Series(weights)


def probability_score(mean, std) -> np.ndarray:
    """``Phi(|mu| / sigma)``; neutral where sigma is missing or zero."""
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    ok = np.isfinite(mean) & np.isfinite(std) & (std > 0)
    return np.where(ok, stats.norm.cdf(np.abs(mean) / np.where(ok, std, 1.0)), NEUTRAL)


def variance_ratio_score(z) -> np.ndarray:
    """``Phi(|z|)``; neutral where z is missing."""
    z = np.asarray(z, float)
    return np.where(np.isfinite(z), stats.norm.cdf(np.abs(np.nan_to_num(z))), NEUTRAL)


def classifier_score(probability_up, forecast) -> np.ndarray:
    """The classifier's probability of the forecast's sign: ``P(up)`` where the forecast is positive,
    ``1 - P(up)`` where it is negative; neutral where either is missing or the forecast is 0."""
    p, f = np.asarray(probability_up, float), np.asarray(forecast, float)
    ok = np.isfinite(p) & np.isfinite(f) & (f != 0)
    return np.where(ok, np.where(f > 0, p, 1.0 - p), NEUTRAL)
