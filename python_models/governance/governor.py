"""The governance policy applied session by session: emergency stops, reviews, the active model.

:func:`govern` walks the sessions in time order. At each close it first applies the emergency
stops and resumptions (:func:`apply_stops`), then, on a review date, gathers every candidate's
evidence (:func:`review`) and applies the decision rule (:func:`decide`), and finally names
the model the signals follow at that close (:func:`leader`). The thresholds and the evidence
are :mod:`python_models.governance.policy`'s; what carries over from one run to the next is a
:class:`GovernanceState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from python_models.governance.policy import (
    EVIDENCE_COLUMNS,
    Evidence,
    GovernancePolicy,
    evaluate,
    failures,
    rolling_accuracy,
)

DECISION_COLUMNS = [
    "decision_date",
    "action",
    "model",
    "previous_model",
    "rolling_accuracy",
    "reason",
    *EVIDENCE_COLUMNS,
    "thresholds",
]
REVIEW_COLUMNS = ["review_date", "model", *EVIDENCE_COLUMNS, "stopped"]
_FLAGS = {"passes": "boolean", "retains": "boolean"}


@dataclass(frozen=True)
class GovernanceState:
    """Where governance stood at the close of ``date``, as an earlier run left it: the promoted
    candidate ("" while the baseline leads), each model's emergency stop, and the last review
    (the next is ``review_every`` sessions after it)."""

    date: pd.Timestamp
    promoted: str
    stopped: dict[str, bool]
    last_review: pd.Timestamp


@dataclass
class GovernanceResult:
    """``decisions``: promote/hold/revert/stop/resume rows; ``reviews``: every candidate's
    evidence at every review; ``status``: per (model, date) rolling accuracy, stop and
    retrain flags; ``active``: the model signals use at each date's close (empty string:
    nothing may trade)."""

    decisions: pd.DataFrame
    reviews: pd.DataFrame
    status: pd.DataFrame
    active: pd.Series


def stop_flags(accuracy: pd.Series, stop: float, resume: float, initial: bool = False) -> pd.Series:
    """Emergency-stop state per date: on when accuracy < ``stop``, off again once >= ``resume``;
    ``initial`` is the state before the first date."""
    state, out = bool(initial), np.zeros(len(accuracy), bool)
    for i, a in enumerate(accuracy.to_numpy(float)):
        if not np.isnan(a):
            state = a < stop if not state else a < resume
        out[i] = state
    return pd.Series(out, index=accuracy.index)


@dataclass(frozen=True)
class Start:
    """Where a run of :func:`govern` starts deciding.

    ``accuracy`` is the rolling accuracy on the sessions to decide (its index is that calendar);
    ``first_review`` the position among them of the first review (reviews then follow every
    ``review_every`` sessions); ``promoted`` and ``stopped`` the promoted candidate and the
    emergency stops at the close before the first session decided.
    """

    accuracy: pd.DataFrame
    first_review: int
    promoted: str
    stopped: dict[str, bool]


def starting_point(
    accuracy: pd.DataFrame, first_evidence: pd.Timestamp | None, policy: GovernancePolicy, state: GovernanceState | None
) -> Start:
    """The sessions to decide and what holds before them.

    A run from scratch decides every session of ``accuracy``'s calendar, with no promoted model
    and no stop, and reviews first on the first session with evidence (``first_evidence``, the
    first realisation date; None: never). A resumed run decides the sessions after
    ``state.date`` only, from the state's promoted model and stops, and keeps the review grid
    anchored at ``state.last_review``.
    """
    sessions = accuracy.index
    models = list(accuracy.columns)
    if state is None:
        first = int(sessions.searchsorted(first_evidence)) if first_evidence is not None else len(sessions)
        return Start(accuracy, first, "", {m: False for m in models})
    if state.last_review not in sessions:
        raise ValueError(f"the sessions must reach back to the last review {state.last_review.date()}")
    first = int(sessions.get_loc(state.last_review)) + policy.review_every
    kept = accuracy.loc[sessions > state.date]
    # positions count from the first session decided, so the grid shifts by the sessions dropped
    first -= len(sessions) - len(kept)
    return Start(kept, first, state.promoted, {m: bool(state.stopped.get(m, False)) for m in models})


@dataclass
class DecisionLog:
    """The audit trail a run writes, in the order the decisions are taken: decision rows (with the
    model's rolling accuracy that day and the thresholds in force) and review rows."""

    accuracy: pd.DataFrame
    thresholds: str
    decisions: list[dict] = field(default_factory=list)
    reviews: list[dict] = field(default_factory=list)

    def record(
        self,
        date: pd.Timestamp,
        action: str,
        model: str,
        previous: str,
        reason: str,
        evidence: Evidence | None = None,
    ) -> None:
        """Add one decision row: ``action`` on ``model`` (``previous``: the model it replaces or
        keeps) with its ``reason`` and, at a review, the ``evidence`` it rests on."""
        self.decisions.append(
            {
                "decision_date": date,
                "action": action,
                "model": model,
                "previous_model": previous,
                "rolling_accuracy": float(self.accuracy.at[date, model]) if model in self.accuracy.columns else np.nan,
                "reason": reason,
                "thresholds": self.thresholds,
                **(evidence or {}),
            }
        )


def apply_stops(
    log: DecisionLog,
    date: pd.Timestamp,
    was: dict[str, bool],
    now: dict[str, bool],
    promoted: str,
    policy: GovernancePolicy,
) -> str:
    """The emergency stops and resumptions that take effect at this close.

    ``was`` and ``now`` are each model's stop at the previous close and at this one. A model
    newly stopped is logged as a stop and, if it is the promoted one, reverted to the baseline
    the same close; one newly back above the bar is logged as a resume. Returns the promoted
    model after them ("" when the baseline leads).
    """
    accuracy = log.accuracy
    for m, stopped in now.items():
        if stopped and not was[m]:
            reason = f"rolling directional accuracy {accuracy.at[date, m]:.4f} < {policy.stop_accuracy}"
            log.record(date, "stop", m, m, reason)
            if m == promoted:
                log.record(date, "revert", policy.baseline, m, f"emergency stop of the promoted model {m}")
                promoted = ""
        elif was[m] and not stopped:
            reason = f"rolling directional accuracy {accuracy.at[date, m]:.4f} >= {policy.retrain_accuracy}"
            log.record(date, "resume", m, m, reason)
    return promoted


def review(
    date: pd.Timestamp,
    candidates: list[str],
    loss_diff: pd.DataFrame,
    returns: pd.DataFrame,
    stopped: dict[str, bool],
    policy: GovernancePolicy,
    regimes: pd.Series | None,
) -> list[Evidence]:
    """Every candidate's evidence at a review on ``date``: the trailing ``evidence_window``
    sessions known at its close (:func:`python_models.governance.policy.evaluate`, Bonferroni
    over the candidates), with ``stopped`` recorded; a stopped candidate neither passes nor
    retains."""
    window_ld = loss_diff.loc[:date].tail(policy.evidence_window)
    window_r = returns.loc[:date].tail(policy.evidence_window)
    evs = []
    for c in candidates:
        ev = evaluate(c, window_ld[c], window_r, policy.baseline, policy, regimes, n_tests=len(candidates))
        ev["stopped"] = bool(stopped[c])
        ev["passes"] = ev["passes"] and not ev["stopped"]
        ev["retains"] = ev["retains"] and not ev["stopped"]
        evs.append(ev)
    return evs


def decide(
    log: DecisionLog, date: pd.Timestamp, evidence: list[Evidence], promoted: str, policy: GovernancePolicy
) -> str:
    """The decision rule at a review; returns the promoted model after it ("": the baseline).

    A promoted model is held while it still retains and reverted to the baseline when it does
    not. With the baseline leading, the best-scoring candidate that passes the promotion bar is
    promoted; if none does, the baseline is held and the best candidate's shortfalls recorded.
    """
    base = policy.baseline
    if promoted:
        ev = {e["model"]: e for e in evidence}[promoted]
        if ev["retains"]:
            log.record(date, "hold", promoted, promoted, f"{promoted} still beats {base}", _evidence(ev))
            return promoted
        reason = f"{promoted} no longer beats {base}: " + failures(ev, policy, retain=True)
        log.record(date, "revert", base, promoted, reason, _evidence(ev))
        return ""
    passing = sorted((e for e in evidence if e["passes"]), key=lambda e: -e["score"])
    if passing:
        best = passing[0]
        log.record(
            date,
            "promote",
            best["model"],
            base,
            f"{best['model']} met the bar (score {best['score']:.3f})",
            _evidence(best),
        )
        return str(best["model"])
    if evidence:
        best = max(evidence, key=lambda e: e["score"])
        reason = f"no candidate met the bar; best {best['model']}: " + failures(best, policy)
        log.record(date, "hold", base, base, reason, _evidence(best))
    return ""


def leader(promoted: str, baseline: str, stopped: dict[str, bool]) -> str:
    """The model signals follow at a close: the promoted one unless stopped, else the baseline
    unless stopped, else none ("")."""
    first = promoted or baseline
    if not stopped[first]:
        return first
    return baseline if not stopped[baseline] else ""


def model_status(
    accuracy: pd.DataFrame, stopped: pd.DataFrame, active: pd.Series, policy: GovernancePolicy
) -> pd.DataFrame:
    """Per (model, date): rolling accuracy, emergency stop, retraining flag and whether it is the
    model signals follow (the ``marts.model_risk`` rows)."""
    status = (
        accuracy.stack(future_stack=True)
        .rename("rolling_accuracy")
        .rename_axis(["date", "model"])
        .reset_index()
        .merge(stopped.stack().rename("stopped").rename_axis(["date", "model"]).reset_index(), on=["date", "model"])
    )
    status["needs_retrain"] = status["rolling_accuracy"] < policy.retrain_accuracy
    status["active"] = status["model"].to_numpy() == active.reindex(status["date"]).to_numpy()
    return status[["model", "date", "rolling_accuracy", "stopped", "needs_retrain", "active"]]


def govern(
    loss_diff: pd.DataFrame,
    hits: pd.DataFrame,
    returns: pd.DataFrame,
    policy: GovernancePolicy,
    regimes: pd.Series | None = None,
    sessions: pd.DatetimeIndex | None = None,
    state: GovernanceState | None = None,
) -> GovernanceResult:
    """Run the governance rules over every session, in time order.

    Parameters
    ----------
    loss_diff, hits
        From :func:`python_models.governance.policy.daily_evidence` (indexed by realisation date).
    returns : pandas.DataFrame
        Daily net returns of each model's strategy (a return dated ``t`` is earned over
        session ``t``, so it is known at ``t``'s close).
    policy : GovernancePolicy
        The thresholds in force.
    regimes : pandas.Series, optional
        Most likely market regime per date, for the stability term.
    sessions : pandas.DatetimeIndex, optional
        The calendar to decide on; default: the dates of ``returns``.
    state : GovernanceState, optional
        Resume where an earlier run stopped: decide only the sessions after ``state.date``.
        The inputs then need to reach back only as far as those decisions read (the evidence
        window before the next review, the accuracy window); the result holds the new
        sessions' rows, the ones the whole history gives them.

    Returns
    -------
    GovernanceResult
        The decisions, the reviews, each model's status and the active model of every
        session decided.
    """
    base = policy.baseline
    if base not in hits.columns or base not in returns.columns:
        raise ValueError(f"baseline {base!r} needs hit rates and strategy returns")
    calendar = pd.DatetimeIndex(sessions if sessions is not None else returns.index).sort_values()
    models = sorted(set(hits.columns) & set(returns.columns))
    candidates = [m for m in models if m != base and m in loss_diff.columns]
    accuracy = rolling_accuracy(hits[models], policy.accuracy_window).reindex(calendar, method="ffill")
    first_evidence = loss_diff.index.min() if len(loss_diff) else None
    start = starting_point(accuracy, first_evidence, policy, state)
    acc, days = start.accuracy, start.accuracy.index
    stopped = pd.DataFrame(
        {m: stop_flags(acc[m], policy.stop_accuracy, policy.retrain_accuracy, start.stopped[m]) for m in models},
        index=days,
    )
    flags = stopped.to_numpy()  # row i: the stops at close i, models in column order
    log = DecisionLog(acc, policy.thresholds())
    active = pd.Series("", index=days, dtype=object)
    reviews = set(range(start.first_review, len(days), policy.review_every))
    promoted, was = start.promoted, start.stopped
    for i, date in enumerate(days):
        now = dict(zip(models, flags[i].tolist(), strict=True))
        promoted = apply_stops(log, date, was, now, promoted, policy)
        if i in reviews:
            evidence = review(date, candidates, loss_diff, returns, now, policy, regimes)
            log.reviews.extend({"review_date": date, **ev} for ev in evidence)
            promoted = decide(log, date, evidence, promoted, policy)
        active.iloc[i] = leader(promoted, base, now)
        was = now
    return GovernanceResult(
        decisions=pd.DataFrame(log.decisions, columns=DECISION_COLUMNS).astype(_FLAGS),
        reviews=pd.DataFrame(log.reviews, columns=REVIEW_COLUMNS).astype({**_FLAGS, "stopped": bool}),
        status=model_status(acc, stopped, active, policy),
        active=active,
    )


def _evidence(ev: Evidence) -> Evidence:
    """The evidence as a decision row records it (the model and its stop are in the row already)."""
    return {k: v for k, v in ev.items() if k not in ("model", "stopped")}
