"""Input-feature drift: population stability index of recent values against the training window."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Conventional PSI reading: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift.
PSI_DRIFT = 0.25


def population_stability_index(reference, recent, bins: int = 10, eps: float = 1e-4) -> float:
    """``sum (q - p) ln(q / p)`` over the reference's quantile bins (``p``: reference shares,
    ``q``: recent shares; empty bins count as ``eps``). NaN when either sample is empty."""
    ref = np.asarray(reference, float)
    new = np.asarray(recent, float)
    ref, new = ref[np.isfinite(ref)], new[np.isfinite(new)]
    if ref.size == 0 or new.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1) / ref.size
    q = np.bincount(np.searchsorted(edges, new, side="right"), minlength=edges.size + 1) / new.size
    p, q = np.maximum(p, eps), np.maximum(q, eps)
    return float(np.sum((q - p) * np.log(q / p)))


#: Sessions of the recent sample at a review.
RECENT_WINDOW = 63


def feature_drift(
    features: pd.DataFrame,
    review_dates,
    train_window: int = 756,
    recent_window: int = RECENT_WINDOW,
    threshold: float = PSI_DRIFT,
) -> pd.DataFrame:
    """PSI of every feature at each review date, pooled over tickers.

    ``features`` has ``date``, optionally ``ticker``, and numeric feature columns. At a
    review date the recent sample is the last ``recent_window`` sessions up to it and the
    reference the ``train_window`` sessions before those (the models' training window).
    Returns ``review_date, feature, psi, drifted``.
    """
    if "date" not in features.columns:
        raise ValueError("features need a date column")
    cols = [c for c in features.columns if c not in ("date", "ticker") and pd.api.types.is_numeric_dtype(features[c])]
    sessions = pd.DatetimeIndex(sorted(features["date"].unique()))
    dates = pd.DatetimeIndex(features["date"])
    rows = []
    for review in pd.DatetimeIndex(review_dates):
        end = sessions.searchsorted(review, side="right")
        if end < recent_window + train_window:
            continue
        recent_from, ref_from = sessions[end - recent_window], sessions[end - recent_window - train_window]
        recent = features[(dates >= recent_from) & (dates <= sessions[end - 1])]
        ref = features[(dates >= ref_from) & (dates < recent_from)]
        for c in cols:
            psi = population_stability_index(ref[c].to_numpy(float), recent[c].to_numpy(float))
            rows.append({"review_date": review, "feature": c, "psi": psi, "drifted": bool(psi > threshold)})
    return pd.DataFrame(rows, columns=["review_date", "feature", "psi", "drifted"])
