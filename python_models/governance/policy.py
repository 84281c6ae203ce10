"""Model selection and model-risk governance: the policy's thresholds and the evidence it reads.

A *baseline* model (by default the inverse-MSE ensemble) is always available as the
automatic fallback. Every ``review_every`` sessions each other model (a *candidate*) is
judged on the trailing ``evidence_window`` sessions against the baseline, using only
forecasts already realised and strategy returns already earned at the review's close:

* **loss** — Diebold–Mariano (fixed-smoothing) on the daily cross-sectional mean of the squared-error
  differential (candidate minus baseline), one-sided: the candidate must have *lower* loss
  with a p-value below ``alpha`` after a Bonferroni adjustment for the number of candidates
  judged at the review (reviews over time are not adjusted for: each is a new decision);
* **profit factor** of the candidate's own Kelly strategy at least ``min_pf_uplift`` (3 %)
  above the baseline's;
* **drawdown** of the candidate's strategy at most ``max_dd_increase`` (50 %) deeper than
  the baseline's.

A candidate that meets all three is *promoted*, the best by :func:`selection_score` if
several do. A promoted model is kept (*hold*) while it still beats the baseline (lower
mean loss, profit factor not below the baseline's, drawdown within the bound) and is
*reverted* to the baseline at the first review where it does not.

Every session two rules watch each model, and either *stops* it at once (emergency stop; if it
is the promoted model, the baseline takes over the same day):

* **decay** — :mod:`python_models.governance.decay`'s CUSUM on the model's loss relative to the
  ``decay_baseline``'s (the random walk) on the same forecasts: it alarms when the model has become
  worse than it was *relative to the random walk*, which a sell-off, raising both losses together,
  does not make it. The alarm flags the model for retraining (``needs_retrain``; a sensor queues the
  retrain) and stops it until the CUSUM is back at 0.
* **the accuracy floor** (the design's 0.45) — on the *balanced* directional accuracy over the last
  ``accuracy_window`` realisation dates: the mean of the share of rises forecast up and the share of
  falls forecast down. A model without skill scores 0.5 in any market, however long it leans (always
  long: 1 on rises, 0 on falls), so the floor catches a model whose calls have turned against the
  outcome, not a falling market; the plain accuracy (``rolling_accuracy``, kept in the marts) of a
  mostly-long model falls below 0.45 in every sell-off, which stopped every model at once. Below
  ``stop_accuracy`` (0.45) the model is stopped; it resumes at ``resume_accuracy`` (0.50) or above.
  The window is a year of realisation dates: at the 21-session signal horizon the forecasts overlap,
  so 252 dates hold 12 independent outcomes per ticker and 63 only 3, and on 63 dates the balanced
  accuracy of the default build's models crossed 0.45 on noise (15.5 % of model-dates stopped against
  2.4 % on 252; ``benchmarks/decay_vs_accuracy_stop.py``).

When the baseline itself is stopped and no promoted model is running, nothing trades.

This module holds the thresholds (:class:`GovernancePolicy`) and the evidence a decision
reads (:func:`daily_evidence`, :func:`rolling_accuracy`, :func:`evaluate`,
:func:`model_strategy_returns`); :mod:`python_models.governance.governor` applies the rules
session by session, and :mod:`python_models.governance.resume` says where a daily refresh
picks them up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from python_models.backtest.performance import max_drawdown, profit_factor, sharpe_ratio
from python_models.evaluation.metrics import dm_test, sign_hits
from python_models.governance.decay import DecayPolicy, relative_loss
from python_models.portfolio.sizing import kelly_weights

#: Shares of the selection score; see :func:`selection_score`.
SCORE_WEIGHTS = {"profit_factor": 0.35, "sharpe": 0.25, "drawdown": 0.20, "stability": 0.20}

#: Evidence on one candidate at one review (:func:`evaluate`): the :data:`EVIDENCE_COLUMNS`
#: and the candidate's ``model`` name.
Evidence = dict[str, Any]

#: Evidence on a candidate against the baseline, as :func:`evaluate` returns it.
EVIDENCE_COLUMNS = [
    "n_dates",
    "mean_loss_diff",
    "dm_stat",
    "dm_pvalue",
    "dm_pvalue_adjusted",
    "profit_factor",
    "baseline_profit_factor",
    "pf_uplift",
    "max_drawdown",
    "baseline_max_drawdown",
    "dd_increase",
    "sharpe",
    "baseline_sharpe",
    "stability",
    "score",
    "passes",
    "retains",
]


@dataclass(frozen=True)
class GovernancePolicy:
    """Thresholds in force; every decision row records them."""

    baseline: str = "ensemble"
    horizon: int = 21
    alpha: float = 0.05
    min_pf_uplift: float = 0.03
    max_dd_increase: float = 0.50
    review_every: int = 63
    evidence_window: int = 504
    min_evidence: int = 252
    accuracy_window: int = 252
    stop_accuracy: float = 0.45
    resume_accuracy: float = 0.50
    min_confidence: float = 0.55
    flip_window: int = 21
    max_flips: int = 4
    decay_baseline: str = "random_walk"
    decay_reference: int = DecayPolicy.reference
    decay_lags: int = DecayPolicy.lags
    decay_k: float = DecayPolicy.k
    decay_h: float = DecayPolicy.h

    def __post_init__(self) -> None:
        self.decay_policy()  # its own checks
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        if not 0 <= self.stop_accuracy <= self.resume_accuracy <= 1:
            raise ValueError("need 0 <= stop_accuracy <= resume_accuracy <= 1")
        if min(self.horizon, self.review_every, self.evidence_window, self.min_evidence, self.accuracy_window) < 1:
            raise ValueError("horizon, review_every, evidence_window, min_evidence, accuracy_window must be positive")
        if self.min_evidence > self.evidence_window:
            raise ValueError("min_evidence cannot exceed evidence_window")
        if self.max_dd_increase < 0:
            raise ValueError("max_dd_increase must be non-negative")

    def decay_policy(self) -> DecayPolicy:
        """The decay CUSUM's settings."""
        return DecayPolicy(self.decay_reference, self.decay_lags, self.decay_k, self.decay_h)

    def thresholds(self) -> str:
        """Every threshold as ``name=value``, comma-separated: the record a decision row keeps."""
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items())


@dataclass(frozen=True)
class DatedEvidence:
    """What the forecasts realised on each date say about each model, indexed by ``target_date`` (the
    session a forecast is realised, when it becomes evidence), a column per model.

    ``loss_diff``: the mean over tickers of ``e_c^2 - e_baseline^2`` on the (ticker, origin) pairs
    both forecast (no column for the baseline); ``hits``: the share of the model's forecasts with the
    right sign; ``rise_hits`` / ``rises`` and ``fall_hits`` / ``falls``: how many of the forecasts
    realised on a rise (a fall) were forecast up (down), and how many there were, the counts the
    balanced accuracy pools (:func:`balanced_accuracy`); ``model_loss`` / ``decay_loss``: the sums of
    the model's squared errors and of the decay baseline's on the rows both forecast (no column for
    the decay baseline, none at all without it), whose ratio minus 1 the decay CUSUM reads
    (:attr:`relative_loss`).
    """

    loss_diff: pd.DataFrame
    hits: pd.DataFrame
    rise_hits: pd.DataFrame
    rises: pd.DataFrame
    fall_hits: pd.DataFrame
    falls: pd.DataFrame
    model_loss: pd.DataFrame
    decay_loss: pd.DataFrame

    @property
    def relative_loss(self) -> pd.DataFrame:
        """``d_t``: the model's mean squared error over the decay baseline's on the same rows, minus 1
        (:func:`python_models.governance.decay.relative_loss`; NaN where the baseline's is 0)."""
        return relative_loss(self.model_loss, self.decay_loss)

    def since(self, date: pd.Timestamp) -> DatedEvidence:
        """The evidence realised from ``date`` on."""
        return DatedEvidence(*(getattr(self, f.name).loc[date:] for f in fields(self)))


def daily_evidence(forecasts: pd.DataFrame, baseline: str, decay_baseline: str = "random_walk") -> DatedEvidence:
    """Per realisation date: loss differentials against the ``baseline``, hits, and the losses the
    decay detector compares with the ``decay_baseline``'s (:class:`DatedEvidence`).

    Parameters
    ----------
    forecasts : pandas.DataFrame
        ``model, ticker, asof_date, target_date, y_pred, y_true`` of one horizon; rows
        without ``y_true`` are ignored.
    """
    evidence = DailyEvidence(baseline, decay_baseline)
    evidence.add(forecasts)
    return evidence.result()


class DailyEvidence:
    """:func:`daily_evidence` pooled over batches of tickers: each batch's forecasts are added
    (:meth:`add`) and only their per-date sums and counts are kept, so a universe's evidence never
    holds every ticker's forecasts at once. Every field is a mean, a count or a sum over (ticker,
    origin) rows, so the sums of the batches give them; the hits exactly (sums of 0 and 1), the losses
    up to the order of floating-point additions across batches (one batch: the same additions as one pass).
    """

    _SUMS = ("diff_sum", "diff_count", "hit_sum", "hit_count", "rise_hits", "rises", "fall_hits", "falls",
             "model_loss", "decay_loss")  # fmt: skip

    def __init__(self, baseline: str, decay_baseline: str = "random_walk") -> None:
        self.baseline = baseline
        self.decay_baseline = decay_baseline
        self._sums = {name: pd.DataFrame() for name in self._SUMS}
        self._has_baseline = False
        self._models: set[str] = set()

    def _pool(self, name: str, part: pd.DataFrame) -> None:
        self._sums[name] = _pooled(self._sums[name], part)

    def add(self, forecasts: pd.DataFrame) -> None:
        """Pool ``forecasts`` (:func:`daily_evidence`'s columns) of tickers not added before."""
        need = {"model", "ticker", "asof_date", "target_date", "y_pred", "y_true"}
        if need - set(forecasts.columns):
            raise ValueError(f"forecasts lack columns {sorted(need - set(forecasts.columns))}")
        done = forecasts.dropna(subset=["y_true", "y_pred"])
        if done.empty:
            return
        done = done.assign(
            loss=(done["y_pred"] - done["y_true"]) ** 2,
            hit=sign_hits(done["y_true"], done["y_pred"]).astype(float),
        )
        hits = done.groupby(["target_date", "model"])["hit"]
        self._pool("hit_sum", hits.sum().unstack(fill_value=0.0))
        self._pool("hit_count", hits.count().unstack(fill_value=0))
        for side, rows in (("rise", done[done["y_true"] > 0]), ("fall", done[done["y_true"] < 0])):
            by_side = rows.groupby(["target_date", "model"])["hit"]
            self._pool(f"{side}_hits", by_side.sum().unstack(fill_value=0.0))
            self._pool(f"{side}s", by_side.count().unstack(fill_value=0))
        loss = pivot_mean(done, ["target_date", "ticker", "asof_date"], "model", "loss")
        self._models |= set(loss.columns)
        if self.decay_baseline in loss.columns:
            self._add_decay_losses(loss)
        if self.baseline not in loss.columns:
            return  # no pair with the baseline in this batch: its dates still count (NaN where nothing pairs)
        self._has_baseline = True
        diff = loss.drop(columns=self.baseline).sub(loss[self.baseline], axis=0).groupby(level="target_date")
        self._pool("diff_sum", diff.sum())
        self._pool("diff_count", diff.count())

    def _add_decay_losses(self, loss: pd.DataFrame) -> None:
        """Each model's squared errors and the decay baseline's, summed by date over the rows both forecast."""
        base = loss[self.decay_baseline]
        models = loss.drop(columns=self.decay_baseline)
        paired = models.notna() & base.notna().to_numpy()[:, None]
        own = models.where(paired).groupby(level="target_date").sum()
        theirs = paired.mul(base.fillna(0.0), axis=0).groupby(level="target_date").sum()
        self._pool("model_loss", own)
        self._pool("decay_loss", theirs)

    def result(self) -> DatedEvidence:
        """The :class:`DatedEvidence` of every batch added."""
        if not self._has_baseline:
            raise ValueError(f"baseline {self.baseline!r} has no realised forecasts")
        sums = self._sums
        hits = _mean(sums["hit_sum"], sums["hit_count"])
        dates = hits.index.rename("target_date")
        models = sorted(self._models - {self.baseline})  # a model never paired with the baseline: all NaN
        loss_diff = _mean(sums["diff_sum"], sums["diff_count"]).reindex(index=dates, columns=models)
        observed = sorted(hits.columns)
        decayable = sorted(self._models - {self.decay_baseline}) if len(sums["decay_loss"].columns) else []

        def shaped(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
            return (
                frame.reindex(index=dates, columns=columns).astype(float).rename_axis(index="target_date", columns=None)
            )

        return DatedEvidence(
            loss_diff=shaped(loss_diff, models),
            hits=shaped(hits, observed),
            # a count of nothing is 0 (a date whose forecasts all realised on a rise has no fall)
            **{name: shaped(sums[name], observed).fillna(0.0) for name in ("rise_hits", "rises", "fall_hits", "falls")},
            **{name: shaped(sums[name], decayable) for name in ("model_loss", "decay_loss")},
        )


def pivot_mean(frame: pd.DataFrame, index: list[str], columns: str, values: str) -> pd.DataFrame:
    """``frame.pivot_table(index=index, columns=columns, values=values)``, the same frame (the mean of
    each cell's rows, rows and columns of nothing but NaN left out, both sorted) at half the cost:
    pivot_table's generic path costs ~40 ms more on the ~140k forecasts of a daily refresh."""
    means = frame.groupby([*index, columns])[values].mean().dropna()
    # unstack can order the columns as they come once the NaN cells are gone: sort them as pivot_table does
    return means.unstack(columns).dropna(how="all", axis=1).sort_index(axis=1)


def _pooled(total: pd.DataFrame, part: pd.DataFrame) -> pd.DataFrame:
    """``total + part`` over the union of their dates and models (0 where one lacks a cell)."""
    if total.empty and not len(total.columns):
        return part
    return total.add(part, fill_value=0)


def _mean(sums: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """``sums / counts`` cell by cell, NaN where nothing was counted; dates and models sorted."""
    sums, counts = sums.sort_index().sort_index(axis=1), counts.sort_index().sort_index(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / counts.where(counts > 0)
    return out.astype(float)


#: Decimals the rolling accuracy is rounded to before it meets a threshold.
ACCURACY_DECIMALS = 12


def rolling_accuracy(hits: pd.DataFrame, window: int) -> pd.DataFrame:
    """Mean of the daily hit rates over the last ``window`` realisation dates (full windows only).

    Hit rates are ratios of small integers, so an accuracy exactly at a threshold (0.45 =
    567 / 1260) is common; a rolling mean carries a rounding error of ~1e-16 that depends on
    how far back the series starts, which would decide such ties at random (and differently
    for the daily refresh than for a rebuild). Rounded to :data:`ACCURACY_DECIMALS`, a tie is
    a tie: 0.45 is not below 0.45.
    """
    return hits.rolling(window, min_periods=window).mean().round(ACCURACY_DECIMALS)


def balanced_accuracy(evidence: DatedEvidence, window: int) -> pd.DataFrame:
    """The balanced directional accuracy over the last ``window`` realisation dates (full windows only):
    ``(rise_hits / rises + fall_hits / falls) / 2``, the counts pooled over the window's dates.

    A forecaster without skill scores 0.5 in expectation whatever the market does and however it leans;
    a window without a rise or without a fall has none (NaN). Rounded to :data:`ACCURACY_DECIMALS` as
    :func:`rolling_accuracy` is, so a tie at a threshold is a tie.
    """
    present = evidence.hits.notna()  # the dates a model has realised forecasts on, as rolling_accuracy counts them

    def pooled(counts: pd.DataFrame) -> pd.DataFrame:
        return counts.fillna(0.0).where(present).rolling(window, min_periods=window).sum()

    rises, falls = pooled(evidence.rises), pooled(evidence.falls)
    with np.errstate(invalid="ignore", divide="ignore"):
        up = pooled(evidence.rise_hits) / rises.where(rises > 0)
        down = pooled(evidence.fall_hits) / falls.where(falls > 0)
    return ((up + down) / 2.0).round(ACCURACY_DECIMALS)


def _stability(cand: pd.Series, base: pd.Series, regimes: pd.Series | None) -> float:
    """Share of calendar years (>= 63 sessions) and of regimes (>= 21 sessions) in which the
    candidate's mean daily return beats the baseline's; the mean of the two shares."""
    diff = cand - base
    shares = []
    years = diff.groupby(diff.index.year)
    wins = [g.mean() > 0 for _, g in years if len(g) >= 63]
    if wins:
        shares.append(float(np.mean(wins)))
    if regimes is not None:
        lab = regimes.reindex(diff.index)
        wins = [g.mean() > 0 for _, g in diff.groupby(lab) if len(g) >= 21]
        if wins:
            shares.append(float(np.mean(wins)))
    return float(np.mean(shares)) if shares else 0.5


def selection_score(pf_uplift: float, sharpe_gain: float, dd_increase: float, stability: float) -> float:
    """Weighted score in [0, 1] (0.5: no better nor worse than the baseline).

    ``0.35 clip(0.5 + 2.5 pf_uplift) + 0.25 clip(0.5 + sharpe_gain / 2) + 0.20 clip(0.5 -
    dd_increase) + 0.20 stability``, each term clipped to [0, 1]: +20 % profit factor, +1
    Sharpe, or a drawdown half as deep each score full marks.
    """
    parts = {
        "profit_factor": 0.5 + 2.5 * pf_uplift,
        "sharpe": 0.5 + sharpe_gain / 2.0,
        "drawdown": 0.5 - dd_increase,
        "stability": stability,
    }
    return float(sum(SCORE_WEIGHTS[k] * np.clip(v, 0.0, 1.0) for k, v in parts.items() if np.isfinite(v)))


def evaluate(
    candidate: str,
    loss_diff: pd.Series,
    returns: pd.DataFrame,
    baseline: str,
    policy: GovernancePolicy,
    regimes: pd.Series | None = None,
    n_tests: int = 1,
) -> Evidence:
    """Evidence on one candidate against the baseline over one review window.

    ``loss_diff`` and ``returns`` must already be cut to the window (the caller decides the
    dates); ``returns`` has a column per model. ``n_tests`` candidates are judged at the
    same review, so the DM p-value is Bonferroni-adjusted (``min(1, n_tests p)``) before it
    meets ``alpha``. Returns the evidence with ``passes`` (the promotion bar) and
    ``retains`` (the bar to stay promoted).
    """
    d = loss_diff.dropna()
    rc, rb = returns[candidate].dropna(), returns[baseline].dropna()
    rc, rb = rc.align(rb, join="inner")
    ev: Evidence = {"model": candidate, "n_dates": int(len(d)), "mean_loss_diff": float(d.mean()) if len(d) else np.nan}
    if len(d) >= 3 and d.std() > 0:
        stat, p2 = dm_test(d.to_numpy(), policy.horizon)
        ev["dm_stat"], ev["dm_pvalue"] = stat, p2 / 2.0 if stat < 0 else 1.0 - p2 / 2.0
    else:
        ev["dm_stat"], ev["dm_pvalue"] = np.nan, 1.0
    ev["dm_pvalue_adjusted"] = min(1.0, ev["dm_pvalue"] * max(1, n_tests))
    pf_c, pf_b = profit_factor(rc), profit_factor(rb)
    dd_c, dd_b = max_drawdown(rc), max_drawdown(rb)
    ev.update(
        profit_factor=pf_c,
        baseline_profit_factor=pf_b,
        pf_uplift=pf_c / pf_b - 1.0 if pf_b > 0 else np.nan,
        max_drawdown=dd_c,
        baseline_max_drawdown=dd_b,
        dd_increase=abs(dd_c) / abs(dd_b) - 1.0 if dd_b < 0 else (np.inf if dd_c < 0 else 0.0),
        sharpe=sharpe_ratio(rc) if len(rc) > 1 else np.nan,
        baseline_sharpe=sharpe_ratio(rb) if len(rb) > 1 else np.nan,
        stability=_stability(rc, rb, regimes) if len(rc) else np.nan,
    )
    ev["score"] = selection_score(
        ev["pf_uplift"], ev["sharpe"] - ev["baseline_sharpe"], ev["dd_increase"], ev["stability"]
    )
    enough = len(d) >= policy.min_evidence
    pf_ok = np.isfinite(ev["pf_uplift"]) and ev["pf_uplift"] >= policy.min_pf_uplift
    dd_ok = ev["dd_increase"] <= policy.max_dd_increase
    ev["passes"] = bool(enough and ev["dm_pvalue_adjusted"] < policy.alpha and pf_ok and dd_ok)
    ev["retains"] = bool(
        enough and ev["mean_loss_diff"] < 0 and np.isfinite(ev["pf_uplift"]) and ev["pf_uplift"] >= 0 and dd_ok
    )
    return ev


def failures(ev: Evidence, policy: GovernancePolicy, retain: bool = False) -> str:
    """Why ``ev`` falls short of the promotion bar (``retain``: of the bar to stay promoted), as
    the reason a decision row records; "none" when it does not."""
    out = []
    if ev["n_dates"] < policy.min_evidence:
        out.append(f"{ev['n_dates']} evidence dates < {policy.min_evidence}")
    if retain:
        if not ev["mean_loss_diff"] < 0:
            out.append("loss not below the baseline's")
        if not (np.isfinite(ev["pf_uplift"]) and ev["pf_uplift"] >= 0):
            out.append(f"profit factor uplift {ev['pf_uplift']:.2%} < 0")
    else:
        if not ev["dm_pvalue_adjusted"] < policy.alpha:
            out.append(
                f"DM p = {ev['dm_pvalue']:.3f} (Bonferroni-adjusted {ev['dm_pvalue_adjusted']:.3f}) >= {policy.alpha}"
            )
        if not (np.isfinite(ev["pf_uplift"]) and ev["pf_uplift"] >= policy.min_pf_uplift):
            out.append(f"profit factor uplift {ev['pf_uplift']:.2%} < {policy.min_pf_uplift:.0%}")
    if not ev["dd_increase"] <= policy.max_dd_increase:
        out.append(f"drawdown increase {ev['dd_increase']:.0%} > {policy.max_dd_increase:.0%}")
    if ev.get("stopped"):
        out.append("emergency-stopped")
    return "; ".join(out) or "none"


def model_strategy_returns(
    forecasts: pd.DataFrame,
    backtest: Callable[[pd.DataFrame], pd.DataFrame],
    fraction: float = 0.5,
    cap: float = 0.10,
    max_gross: float = 1.0,
) -> pd.DataFrame:
    """Daily net return of each model's own Kelly strategy (the evidence on profit factor,
    drawdown and Sharpe): the same sizing (:func:`~python_models.portfolio.sizing.kelly_book`'s
    risky sleeve) as ``marts.allocations`` gives each model's own book, valued by ``backtest``.

    ``forecasts`` has ``model, ticker, asof_date, y_pred, y_std`` at the signal horizon;
    ``backtest`` takes decisions (dates by tickers) and returns
    :func:`~python_models.backtest.engine.run_backtest`'s daily frame. The pipeline passes the one
    ``marts.backtest_daily`` is valued with (its execution, costs, cash and book size), so a model
    is judged on the book it would trade. Returns sessions by models, from each model's first
    decision on.
    """
    out = {}
    # one model's book at a time: each is sized on its own, and the long books of every model together
    # are the step's largest frame. The weights are kelly_book's risky sleeve, taken wide as they are
    # sized: its long book pivoted back gives the same frame at the cost of a reshape each way.
    for model, own in forecasts.groupby("model", sort=True):
        wide = own.pivot(index="asof_date", columns="ticker", values=["y_pred", "y_std"])  # one pivot for both
        expected, std = wide["y_pred"], wide["y_std"]
        weights = kelly_weights(expected, std, fraction, cap, max_gross).rename_axis(index="date", columns="ticker")
        if weights.empty:
            continue
        daily = backtest(weights)["net_return"]
        out[model] = daily.loc[daily.index >= weights.index.min()]
    return pd.DataFrame(out)
