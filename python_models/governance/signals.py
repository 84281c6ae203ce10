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

from python_models.forecasters.registry import BASELINE
from python_models.governance.confidence import (
    CONFIDENCE_WEIGHTS,
    classifier_score,
    probability_score,
    signal_confidence,
    trailing_skill,
    variance_ratio_score,
    width_score,
)
from python_models.governance.fallback import LLM_PREFIX, Routing
from python_models.governance.policy import GovernancePolicy, pivot_mean

#: The block reason of a ticker without an LLM signal on a session routed to the LLM source.
NO_LLM_SIGNAL = "no_llm_signal"
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


def governed_signals(
    signals: pd.DataFrame, active: pd.Series, policy: GovernancePolicy, routing: Routing | None = None
) -> pd.DataFrame:
    """One signal per (ticker, date): the active model's row, with the trade gate applied.

    ``signals`` comes from :func:`model_signals`; ``active`` maps each date to the active
    model ("" when nothing may trade: then the baseline's forecast is kept for the record).
    On the sessions ``routing`` routes to the LLM source (:mod:`python_models.governance.fallback`)
    a ticker's row is the LLM's signal instead (``model`` ``llm:<model>``), or blocked as
    ``no_llm_signal`` where it has none; the confidence floor and the flip count gate both kinds.
    """
    act = active.rename("active").rename_axis("asof_date").reset_index()
    act["chosen"] = act["active"].where(act["active"] != "", policy.baseline)
    out = signals.merge(act, left_on=["asof_date", "model"], right_on=["asof_date", "chosen"], how="inner")
    out = out.sort_values(["ticker", "asof_date"]).reset_index(drop=True)
    out["route"] = ""
    out["direction"] = np.sign(out["y_pred"]).astype(int)
    out["flips"] = flip_counts(out["direction"].to_numpy(), out["ticker"].to_numpy(), policy.flip_window)
    if routing is not None and routing.routed.any():
        out = _routed(out, signals, routing, policy)
    reason = np.select(
        [
            out["route"] == NO_LLM_SIGNAL,
            (out["active"] == "") & (out["route"] == ""),
            out["confidence"] < policy.min_confidence,
            out["flips"] > policy.max_flips,
        ],
        [NO_LLM_SIGNAL, "model_stopped", "low_confidence", "flip_flopping"],
        default="",
    )
    out["block_reason"] = pd.Series(reason, index=out.index).replace("", None)
    out["tradable"] = out["block_reason"].isna()
    return out.drop(columns=["active", "chosen", "route"])


def _routed(out: pd.DataFrame, signals: pd.DataFrame, routing: Routing, policy: GovernancePolicy) -> pd.DataFrame:
    """``out``'s rows on the routed sessions replaced by the LLM's signals: its expected return and stated
    confidence; the spread the book sizes it with is the random walk's (registry.BASELINE) forecast
    standard deviation at the same origin, the scale of the horizon's return without a view. The
    confidence components, which score a model's forecasts, do not apply (NaN). Its flips are the LLM's
    changes of direction within the ticker's run of routed sessions, over the last ``flip_window`` of them:
    the LLM's own, as a model's flips are its own."""
    routed_dates = routing.routed.index[routing.routed.to_numpy()]
    on = out["asof_date"].isin(routed_dates).to_numpy()
    llm = out[["ticker", "asof_date"]].merge(routing.signals, on=["ticker", "asof_date"], how="left")
    has = on & llm["llm_model"].notna().to_numpy()
    scale = signals[signals["model"] == BASELINE].set_index(["ticker", "asof_date"])["y_std"]
    keys = pd.MultiIndex.from_frame(out.loc[has, ["ticker", "asof_date"]])
    out = out.copy()
    out.loc[has, "model"] = LLM_PREFIX + llm.loc[has, "llm_model"].astype(str).to_numpy()
    out.loc[has, "y_pred"] = llm.loc[has, "expected_return"].to_numpy(float)
    out.loc[has, "y_std"] = scale.reindex(keys).fillna(out.loc[has, "y_std"].set_axis(keys)).to_numpy(float)
    out.loc[has, "confidence"] = llm.loc[has, "confidence"].to_numpy(float)
    out.loc[has, ["y_lower", "y_upper", *CONFIDENCE_WEIGHTS]] = np.nan
    out.loc[has, "route"] = "llm"
    direction = np.sign(out.loc[has, "y_pred"].to_numpy()).astype(int)
    out.loc[has, "direction"] = direction
    # a ticker's run of consecutive routed sessions is one series: its flips look back over the run only, and
    # no further than flip_window sessions (the rows are the ticker's sessions in order), as a model's do
    ticker = out["ticker"].to_numpy()
    same = np.r_[False, ticker[1:] == ticker[:-1]]
    starts = has & ~(np.r_[False, has[:-1]] & same)
    out.loc[has, "flips"] = flip_counts(direction, np.cumsum(starts)[has], policy.flip_window)
    out.loc[on & ~has, "route"] = NO_LLM_SIGNAL
    return out
