"""The governance policy applied session by session: emergency stops, reviews, the active model.

:func:`govern` walks the sessions in time order. At each close it first applies the emergency
stops and resumptions (:func:`apply_stops`: the decay alarm or the balanced-accuracy floor, see
:mod:`python_models.governance.policy`), then, on a review date, gathers every candidate's
evidence (:func:`review`) and applies the decision rule (:func:`decide`), and finally names
the model the signals follow at that close (:func:`leader`). The thresholds and the evidence
are :mod:`python_models.governance.policy`'s; what carries over from one run to the next is a
:class:`GovernanceState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from python_models.governance.decay import decay_cusum
from python_models.governance.policy import (
    EVIDENCE_COLUMNS,
    DatedEvidence,
    Evidence,
    GovernancePolicy,
    balanced_accuracy,
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
STATUS_COLUMNS = [
    "model",
    "date",
    "rolling_accuracy",
    "balanced_accuracy",
    "accuracy_stop",
    "relative_loss",
    "decay_cusum",
    "needs_retrain",
    "stopped",
    "active",
]
#: The sensor that queues a retrain when a decay alarm starts (dagster_pmx.defs.governance.sensors).
RETRAIN_SENSOR = "decay_retrain"
_FLAGS = {"passes": "boolean", "retains": "boolean"}


@dataclass(frozen=True)
class GovernanceState:
    """Where governance stood at the close of ``date``, as an earlier run left it: the promoted
    candidate ("" while the baseline leads), each model's emergency stop, and the last review
    (the next is ``review_every`` sessions after it); of the two rules behind a stop, each model's
    accuracy-floor state (``accuracy_stop``), and its decay CUSUM and alarm (``cusum``, ``decayed``;
    a model missing from them starts at 0 and off)."""

    date: pd.Timestamp
    promoted: str
    stopped: dict[str, bool]
    last_review: pd.Timestamp
    accuracy_stop: dict[str, bool] = field(default_factory=dict)
    cusum: dict[str, float] = field(default_factory=dict)
    decayed: dict[str, bool] = field(default_factory=dict)


@dataclass
class GovernanceResult:
    """``decisions``: promote/hold/revert/stop/resume/retrain rows; ``reviews``: every candidate's
    evidence at every review; ``status``: per (model, date) the two stop rules' readings, the stop
    and the retrain flag (:data:`STATUS_COLUMNS`); ``active``: the model signals use at each date's
    close (empty string: nothing may trade)."""

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
    ``review_every`` sessions); ``promoted``, ``stopped`` and ``accuracy_stop`` the promoted
    candidate, the emergency stops and the accuracy floor's at the close before the first session
    decided.
    """

    accuracy: pd.DataFrame
    first_review: int
    promoted: str
    stopped: dict[str, bool]
    accuracy_stop: dict[str, bool]


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
        return Start(accuracy, first, "", {m: False for m in models}, {m: False for m in models})
    if state.last_review not in sessions:
        raise ValueError(f"the sessions must reach back to the last review {state.last_review.date()}")
    first = int(sessions.get_loc(state.last_review)) + policy.review_every
    kept = accuracy.loc[sessions > state.date]
    # positions count from the first session decided, so the grid shifts by the sessions dropped
    first -= len(sessions) - len(kept)
    return Start(
        kept,
        first,
        state.promoted,
        {m: bool(state.stopped.get(m, False)) for m in models},
        {m: bool(state.accuracy_stop.get(m, False)) for m in models},
    )


@dataclass(frozen=True)
class Watch:
    """The two stop rules' readings on the sessions decided (sessions by models): the balanced
    accuracy and the floor's state on it, the relative loss realised that session, the decay CUSUM
    and its alarm (both carried from the last realisation date), and the stop they make together."""

    balanced: pd.DataFrame
    accuracy_stop: pd.DataFrame
    relative_loss: pd.DataFrame
    cusum: pd.DataFrame
    decayed: pd.DataFrame

    @property
    def stopped(self) -> pd.DataFrame:
        return self.accuracy_stop | self.decayed


def watch(
    evidence: DatedEvidence, models: list[str], start: Start, policy: GovernancePolicy, state: GovernanceState | None
) -> Watch:
    """Both stop rules on the sessions ``start`` decides: the accuracy floor on the balanced accuracy
    (:func:`stop_flags`, from the floor's state before them) and the decay CUSUM of every model but the
    decay baseline (:func:`~python_models.governance.decay.decay_cusum`, resumed from ``state``'s
    statistic and alarm; a model without a relative loss is never decayed)."""
    days = start.accuracy.index
    balanced = balanced_accuracy(evidence, policy.accuracy_window)[models].reindex(days, method="ffill")
    floor = pd.DataFrame(
        {
            m: stop_flags(balanced[m], policy.stop_accuracy, policy.resume_accuracy, start.accuracy_stop[m])
            for m in models
        },
        index=days,
    )
    relative = evidence.relative_loss
    cusum = pd.DataFrame(np.nan, index=days, columns=models)
    decayed = pd.DataFrame(False, index=days, columns=models)
    for m in models:
        carried_cusum = state.cusum.get(m, np.nan) if state is not None else np.nan
        carried_alarm = state.decayed.get(m, False) if state is not None else False
        if m in relative.columns:
            after = state.date if state is not None else None
            readings = decay_cusum(
                relative[m].dropna(),
                policy.decay_policy(),
                after,
                0.0 if np.isnan(carried_cusum) else carried_cusum,
                carried_alarm,
            )
            on_days = readings.reindex(days, method="ffill")
            cusum[m] = on_days["cusum"].fillna(carried_cusum)
            decayed[m] = on_days["decayed"].astype("boolean").fillna(carried_alarm).astype(bool)
        else:
            cusum[m], decayed[m] = carried_cusum, carried_alarm
    return Watch(balanced, floor, relative.reindex(index=days, columns=models), cusum, decayed)


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
    readings: Watch,
    was_rules: tuple[dict[str, bool], dict[str, bool]],
) -> str:
    """The emergency stops, resumptions and retrain requests that take effect at this close.

    ``was`` and ``now`` are each model's stop at the previous close and at this one, ``was_rules`` its
    accuracy floor's state and decay alarm at the previous close; ``readings`` say which rule acts. A
    decay alarm that starts is logged as a retrain request (the :data:`RETRAIN_SENSOR` sensor queues the
    run). A model newly stopped is logged as a stop with the rules that stop it and, if it is the promoted
    one, reverted to the baseline the same close; one that both rules let go is logged as a resume, with
    the rules that held it and have cleared. Returns the promoted model after them ("" when the
    baseline leads).
    """
    was_floor, was_decayed = was_rules
    for m, stopped in now.items():
        if stopped == was[m] and not (stopped and readings.decayed.at[date, m] and not was_decayed[m]):
            continue  # nothing changes at this close (the common case: skip the readings)
        decayed, cusum = bool(readings.decayed.at[date, m]), readings.cusum.at[date, m]
        balanced = readings.balanced.at[date, m]
        if decayed and not was_decayed[m]:
            log.record(
                date, "retrain", m, m, _decay_reading(cusum, policy) + f": retrain requested (sensor {RETRAIN_SENSOR})"
            )
        if stopped and not was[m]:
            reasons = [_decay_reading(cusum, policy)] if decayed else []
            if readings.accuracy_stop.at[date, m]:
                reasons.append(f"balanced directional accuracy {balanced:.4f} < {policy.stop_accuracy}")
            log.record(date, "stop", m, m, "; ".join(reasons))
            if m == promoted:
                log.record(date, "revert", policy.baseline, m, f"emergency stop of the promoted model {m}")
                promoted = ""
        elif was[m] and not stopped:
            cleared = ["decay CUSUM back at 0"] if was_decayed[m] else []
            if was_floor[m]:
                cleared.append(f"balanced directional accuracy {balanced:.4f} >= {policy.resume_accuracy}")
            log.record(date, "resume", m, m, "; ".join(cleared))
    return promoted


def _decay_reading(cusum: float, policy: GovernancePolicy) -> str:
    return f"decay CUSUM {cusum:.2f} > {policy.decay_h} on the loss relative to {policy.decay_baseline}"


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


def model_status(accuracy: pd.DataFrame, readings: Watch, active: pd.Series) -> pd.DataFrame:
    """Per (model, date), the ``marts.model_risk`` rows (:data:`STATUS_COLUMNS`): the plain rolling
    accuracy, the two stop rules' readings, the retrain flag (the decay alarm), the stop and whether it
    is the model signals follow."""
    columns = {
        "rolling_accuracy": accuracy,
        "balanced_accuracy": readings.balanced,
        "accuracy_stop": readings.accuracy_stop,
        "relative_loss": readings.relative_loss,
        "decay_cusum": readings.cusum,
        "needs_retrain": readings.decayed,
        "stopped": readings.stopped,
    }
    status = (
        pd.concat({name: frame.stack(future_stack=True) for name, frame in columns.items()}, axis=1)
        .rename_axis(["date", "model"])
        .reset_index()
    )
    status["active"] = status["model"].to_numpy() == active.reindex(status["date"]).to_numpy()
    flags = {c: bool for c in ("accuracy_stop", "needs_retrain", "stopped", "active")}
    return status[STATUS_COLUMNS].astype({**flags, "rolling_accuracy": float, "balanced_accuracy": float,
                                          "relative_loss": float, "decay_cusum": float})  # fmt: skip


def govern(
    evidence: DatedEvidence,
    returns: pd.DataFrame,
    policy: GovernancePolicy,
    regimes: pd.Series | None = None,
    sessions: pd.DatetimeIndex | None = None,
    state: GovernanceState | None = None,
) -> GovernanceResult:
    """Run the governance rules over every session, in time order.

    Parameters
    ----------
    evidence : DatedEvidence
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
        window before the next review, the accuracy window, the decay CUSUM's reference window);
        the result holds the new sessions' rows, the ones the whole history gives them.

    Returns
    -------
    GovernanceResult
        The decisions, the reviews, each model's status and the active model of every
        session decided.
    """
    base = policy.baseline
    loss_diff, hits = evidence.loss_diff, evidence.hits
    if base not in hits.columns or base not in returns.columns:
        raise ValueError(f"baseline {base!r} needs hit rates and strategy returns")
    calendar = pd.DatetimeIndex(sessions if sessions is not None else returns.index).sort_values()
    models = sorted(set(hits.columns) & set(returns.columns))
    candidates = [m for m in models if m != base and m in loss_diff.columns]
    accuracy = rolling_accuracy(hits[models], policy.accuracy_window).reindex(calendar, method="ffill")
    first_evidence = loss_diff.index.min() if len(loss_diff) else None
    start = starting_point(accuracy, first_evidence, policy, state)
    acc, days = start.accuracy, start.accuracy.index
    readings = watch(evidence, models, start, policy, state)
    flags = readings.stopped[models].to_numpy()  # row i: the stops at close i, models in column order
    alarms = readings.decayed[models].to_numpy()
    log = DecisionLog(acc, policy.thresholds())
    active = pd.Series("", index=days, dtype=object)
    reviews = set(range(start.first_review, len(days), policy.review_every))
    floors = readings.accuracy_stop[models].to_numpy()
    promoted, was = start.promoted, start.stopped
    was_floor = dict(start.accuracy_stop)
    was_decayed = {m: bool(state.decayed.get(m, False)) if state is not None else False for m in models}
    for i, date in enumerate(days):
        now = dict(zip(models, flags[i].tolist(), strict=True))
        promoted = apply_stops(log, date, was, now, promoted, policy, readings, (was_floor, was_decayed))
        if i in reviews:
            review_evidence = review(date, candidates, loss_diff, returns, now, policy, regimes)
            log.reviews.extend({"review_date": date, **ev} for ev in review_evidence)
            promoted = decide(log, date, review_evidence, promoted, policy)
        active.iloc[i] = leader(promoted, base, now)
        was = now
        was_floor = dict(zip(models, floors[i].tolist(), strict=True))
        was_decayed = dict(zip(models, alarms[i].tolist(), strict=True))
    return GovernanceResult(
        decisions=pd.DataFrame(log.decisions, columns=DECISION_COLUMNS).astype(_FLAGS),
        reviews=pd.DataFrame(log.reviews, columns=REVIEW_COLUMNS).astype({**_FLAGS, "stopped": bool}),
        status=model_status(acc, readings, active),
        active=active,
    )


def retrain_requests(result: GovernanceResult) -> dict[str, str]:
    """The retrain requests a run leaves open: each model whose decay alarm is on at the last session it
    decided and started in it, with the date it started (ISO). An alarm that ended, or started in an earlier
    run (which asked already), asks nothing."""
    status = result.status
    if status.empty:
        return {}
    last = status["date"].max()
    on = set(status.loc[(status["date"] == last) & status["needs_retrain"], "model"])
    asked = result.decisions.loc[result.decisions["action"] == "retrain"].groupby("model")["decision_date"].max()
    return {str(m): str(pd.Timestamp(d).date()) for m, d in asked.items() if m in on}


def _evidence(ev: Evidence) -> Evidence:
    """The evidence as a decision row records it (the model and its stop are in the row already)."""
    return {k: v for k, v in ev.items() if k not in ("model", "stopped")}
