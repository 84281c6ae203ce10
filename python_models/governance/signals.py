"""Trading signals from the governed model: confidence, persistence and the trade gate.

For every model and (ticker, date) at the signal horizon the confidence components of
:mod:`python_models.governance.confidence` are computed from information known at that close. The
signal of a date is the row of the model governance has made active at that date
(:func:`python_models.governance.governor.govern`); it may trade only if

* a model is active (not every model emergency-stopped),
* its confidence is at least the policy's ``min_confidence`` (0.55), and
* its direction has not flipped more than ``max_flips`` times over the last
  ``flip_window`` sessions (flip-flopping signals are rejected, not traded).

A signal that may not trade keeps its forecast for the record and says why in
``block_reason``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from python_models.governance.confidence import (
    classifier_score,
    probability_score,
    signal_confidence,
    trailing_skill,
    variance_ratio_score,
    width_score,
)
from python_models.governance.policy import GovernancePolicy, pivot_mean

#: Origins (per model and ticker) the trailing skill and width components read.
CONFIDENCE_WINDOW = 252


def model_signals(
    forecasts: pd.DataFrame,
    horizon: int,
    single_models: list[str],
    variance_ratio_z: pd.DataFrame | None = None,
    window: int = CONFIDENCE_WINDOW,
    min_obs: int = 63,
    direction_probability: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Confidence components and confidence for every model's forecast at ``horizon``.

    Parameters
    ----------
    forecasts : pandas.DataFrame
        ``model, ticker, asof_date, horizon, y_pred, y_std, y_lower, y_upper, y_true``.
    single_models : list of str
        Models whose signs count in the ``agreement`` component.
    variance_ratio_z : pandas.DataFrame, optional
        ``ticker, date, z``: the variance-ratio statistic known at each close.
    direction_probability : pandas.DataFrame, optional
        ``ticker, date, probability``: the direction classifier's calibrated P(up) at ``horizon``,
        made at each close (the ``classifier`` component; neutral where missing).
    """
    need = {"model", "ticker", "asof_date", "horizon", "y_pred", "y_std", "y_lower", "y_upper", "y_true"}
    if need - set(forecasts.columns):
        raise ValueError(f"forecasts lack columns {sorted(need - set(forecasts.columns))}")
    f = forecasts[forecasts["horizon"] == horizon].sort_values(["model", "ticker", "asof_date"])
    if f.empty:
        raise ValueError(f"no forecasts at the signal horizon {horizon}")
    comp = f.reset_index(drop=True)
    # each (model, ticker)'s origins are one series: the trailing windows stay within it
    series = pd.Series(comp.groupby(["model", "ticker"], sort=False).ngroup().to_numpy(), index=comp.index)
    skill = trailing_skill(comp["y_pred"], comp["y_true"], horizon, window, min_obs, by=series)
    comp["accuracy"], comp["fit"] = skill["accuracy"], skill["fit"]
    comp["width"] = width_score(comp["y_upper"] - comp["y_lower"], window, by=series)
    comp["probability"] = probability_score(comp["y_pred"], comp["y_std"])
    signs = np.sign(pivot_mean(f[f["model"].isin(single_models)], ["ticker", "asof_date"], "model", "y_pred"))
    own = np.sign(comp["y_pred"].to_numpy())
    aligned = signs.reindex(pd.MultiIndex.from_frame(comp[["ticker", "asof_date"]])).to_numpy()
    seen = ~np.isnan(aligned)
    count = seen.sum(axis=1)
    agree = np.where(count > 0, ((aligned == own[:, None]) & seen).sum(axis=1) / np.maximum(count, 1), np.nan)
    comp["agreement"] = np.where(own == 0, 0.5, agree)
    if variance_ratio_z is not None:
        z = variance_ratio_z.rename(columns={"date": "asof_date"}).set_index(["ticker", "asof_date"])["z"]
        comp["variance_ratio"] = variance_ratio_score(
            z.reindex(pd.MultiIndex.from_frame(comp[["ticker", "asof_date"]])).to_numpy()
        )
    else:
        comp["variance_ratio"] = 0.5
    if direction_probability is not None:
        up = direction_probability.rename(columns={"date": "asof_date"}).set_index(["ticker", "asof_date"])[
            "probability"
        ]
        aligned_up = up.reindex(pd.MultiIndex.from_frame(comp[["ticker", "asof_date"]])).to_numpy()
        comp["classifier"] = classifier_score(aligned_up, comp["y_pred"].to_numpy())
    else:
        comp["classifier"] = 0.5
    comp["confidence"] = signal_confidence(comp)
    return comp.reset_index(drop=True)


def flip_count(direction: pd.Series, window: int) -> pd.Series:
    """Sign changes of ``direction`` over the last ``window`` sessions (this one included)."""
    flips = (direction != direction.shift()) & direction.shift().notna()
    return flips.astype(int).rolling(window, min_periods=1).sum()


def flip_counts(direction: np.ndarray, labels: np.ndarray, window: int) -> np.ndarray:
    """:func:`flip_count` of each label's series at once (each label's rows contiguous and in time
    order): integer counts, by differences of one cumulative sum instead of a rolling sum per label."""
    n = len(direction)
    if not n:
        return np.zeros(0, dtype=np.int64)
    rows = np.arange(n)
    first = np.r_[True, labels[1:] != labels[:-1]]  # a label's first row: no earlier direction to flip from
    flips = np.r_[False, direction[1:] != direction[:-1]] & ~first
    total = np.cumsum(flips, dtype=np.int64)
    start = np.maximum(rows - window + 1, np.maximum.accumulate(np.where(first, rows, 0)))
    return total - np.where(start > 0, total[start - 1], 0)


def governed_signals(signals: pd.DataFrame, active: pd.Series, policy: GovernancePolicy) -> pd.DataFrame:
    """One signal per (ticker, date): the active model's row, with the trade gate applied.

    ``signals`` comes from :func:`model_signals`; ``active`` maps each date to the active
    model ("" when nothing may trade: then the baseline's forecast is kept for the record).
    """
    act = active.rename("active").rename_axis("asof_date").reset_index()
    act["chosen"] = act["active"].where(act["active"] != "", policy.baseline)
    out = signals.merge(act, left_on=["asof_date", "model"], right_on=["asof_date", "chosen"], how="inner")
    out = out.sort_values(["ticker", "asof_date"]).reset_index(drop=True)
    out["direction"] = np.sign(out["y_pred"]).astype(int)
    out["flips"] = flip_counts(out["direction"].to_numpy(), out["ticker"].to_numpy(), policy.flip_window)
    reason = np.select(
        [out["active"] == "", out["confidence"] < policy.min_confidence, out["flips"] > policy.max_flips],
        ["model_stopped", "low_confidence", "flip_flopping"],
        default="",
    )
    out["block_reason"] = pd.Series(reason, index=out.index).replace("", None)
    out["tradable"] = out["block_reason"].isna()
    return out.drop(columns=["active", "chosen"])
