"""Scores of probability forecasts against the base rate: hit rate, Brier score, log loss,
calibration error, with circular block bootstrap intervals.

The comparator is the **base rate**: the share of events in the training window of the fit that
made the forecast, known when it was made (the climatological forecast). Its hit rate predicts the
majority class of that window.

Intervals. Forecasts of one date share a market, and labels of nearby origins overlap for
``h > 1``, so rows are not independent: the losses are averaged over tickers per date, and the
dates are resampled in circular blocks of ``max(h, block)`` sessions (Politis and Romano, 1992),
the statistic of each draw weighting every date by its rows, as the point estimate does. Each
interval is the percentile interval of the difference model - base rate; the p-value of the log
loss is one-sided (H0: the model does not lower the log loss), from the bootstrap distribution
centred on the estimate.

Not :func:`python_models.evaluation.comparison.bootstrap_interval` (arch's stationary bootstrap of
one series): here three statistics are drawn on the same resamples, each a ratio of per-date sums
(rows weighted as in the estimate), in one vectorised pass instead of a Python call per draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from python_models.resampling import circular_block_indices

#: Columns of :func:`classifier_scores`.
SCORE_COLUMNS = [
    "model",
    "target",
    "horizon",
    "n_obs",
    "n_dates",
    "event_rate",
    "hit_rate",
    "base_hit_rate",
    "hit_rate_diff_lower",
    "hit_rate_diff_upper",
    "brier",
    "base_brier",
    "brier_diff_lower",
    "brier_diff_upper",
    "log_loss",
    "base_log_loss",
    "log_loss_diff_lower",
    "log_loss_diff_upper",
    "log_loss_pvalue",
    "calibration_error",
    "block_length",
    "verdict",
]
#: Bins of the expected calibration error.
CALIBRATION_BINS = 10


def brier(event: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Squared error of each probability against the 0/1 event."""
    return (np.asarray(probability, float) - np.asarray(event, float)) ** 2


def log_losses(event: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of each 0/1 event under its probability (strictly inside (0, 1))."""
    y, p = np.asarray(event, float), np.asarray(probability, float)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def hits(event: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """1 where the class the probability favours (the event above 0.5) happened, else 0."""
    return ((np.asarray(probability, float) > 0.5) == (np.asarray(event, float) > 0.5)).astype(float)


def calibration_error(event: np.ndarray, probability: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error: the row-weighted mean over equal-width probability bins of
    ``|mean probability - event rate|``."""
    p, y = np.asarray(probability, float), np.asarray(event, float)
    if not len(p):
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    n = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, p, bins) - np.bincount(which, y, bins))
    return float(gap.sum() / n.sum())


def block_bootstrap_means(
    sums: np.ndarray, counts: np.ndarray, block: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """Row-weighted means of per-date ``sums`` (columns: statistics) over circular-block
    resamples of the dates: an array of ``draws`` x statistics."""
    n = len(counts)
    block = int(min(max(block, 1), n))
    idx = circular_block_indices(rng, n, n, block, draws)
    weight = counts[idx].sum(axis=1)
    return np.stack([sums[idx, j].sum(axis=1) / weight for j in range(sums.shape[1])], axis=1)


def score_probabilities(
    frame: pd.DataFrame,
    horizon: int,
    block: int = 21,
    draws: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float | int | str]:
    """The scores of one (model, target, horizon): the columns of :data:`SCORE_COLUMNS` after
    ``horizon``. ``frame`` has ``date``, ``probability``, ``base_rate`` and ``event`` (0/1) for
    realised rows only."""
    if frame.empty:
        raise ValueError("no realised probabilities to score")
    y = frame["event"].to_numpy(float)
    p, b = frame["probability"].to_numpy(float), frame["base_rate"].to_numpy(float)
    losses = np.column_stack(
        [
            hits(y, p) - hits(y, b),
            brier(y, p) - brier(y, b),
            log_losses(y, p) - log_losses(y, b),
        ]
    )
    day, where = np.unique(frame["date"].to_numpy(), return_inverse=True)
    counts = np.bincount(where).astype(float)
    sums = np.column_stack([np.bincount(where, losses[:, j], len(day)) for j in range(losses.shape[1])])
    estimate = sums.sum(axis=0) / counts.sum()
    length = max(int(horizon), int(block))
    boot = block_bootstrap_means(sums, counts, length, draws, np.random.default_rng(seed))
    tail = (1 - level) / 2
    lower, upper = np.quantile(boot, tail, axis=0), np.quantile(boot, 1 - tail, axis=0)
    pvalue = float((np.sum(boot[:, 2] - estimate[2] <= estimate[2]) + 1) / (draws + 1))
    if upper[2] < 0:
        verdict = "beats the base rate"
    elif lower[2] > 0:
        verdict = "worse than the base rate"
    else:
        verdict = "no different from the base rate"
    return {
        "n_obs": int(len(frame)),
        "n_dates": int(len(day)),
        "event_rate": float(y.mean()),
        "hit_rate": float(hits(y, p).mean()),
        "base_hit_rate": float(hits(y, b).mean()),
        "hit_rate_diff_lower": float(lower[0]),
        "hit_rate_diff_upper": float(upper[0]),
        "brier": float(brier(y, p).mean()),
        "base_brier": float(brier(y, b).mean()),
        "brier_diff_lower": float(lower[1]),
        "brier_diff_upper": float(upper[1]),
        "log_loss": float(log_losses(y, p).mean()),
        "base_log_loss": float(log_losses(y, b).mean()),
        "log_loss_diff_lower": float(lower[2]),
        "log_loss_diff_upper": float(upper[2]),
        "log_loss_pvalue": pvalue,
        "calibration_error": calibration_error(y, p),
        "block_length": length,
        "verdict": verdict,
    }


def classifier_scores(frame: pd.DataFrame, block: int = 21, draws: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Scores of every (model, target, horizon) of ``frame`` (``model``, ``target``, ``horizon``,
    ``date``, ``probability``, ``base_rate``, ``event``; rows without an event are not yet realised
    and are left out). Pooled over tickers; the columns of :data:`SCORE_COLUMNS`."""
    need = {"model", "target", "horizon", "date", "probability", "base_rate", "event"}
    if need - set(frame.columns):
        raise ValueError(f"frame lacks columns {sorted(need - set(frame.columns))}")
    realised = frame[frame["event"].notna()]
    rows = []
    for (model, target, horizon), group in realised.groupby(["model", "target", "horizon"], sort=True):
        rows.append(
            {
                "model": model,
                "target": target,
                "horizon": int(horizon),
                **score_probabilities(group, int(horizon), block, draws, seed=seed),
            }
        )
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)
