"""Fallback routing: validated LLM signals drive the governed book when governance has nothing to follow.

The original design keeps the LLM "as fallback" for when the quantitative models are stopped. A session is
**routed** when the configured mode asks for it (:data:`MODES`) and the LLM source may trade:

``off``
    never (the default);
``all_stopped``
    the sessions where governance leaves no quantitative model to follow: the promoted model and the
    baseline it falls back to are both emergency-stopped (:func:`~python_models.governance.governor.leader`
    returns ""), so the governed book would otherwise hold nothing;
``always``
    on demand: every session with an eligible LLM signal, whatever governance says.

The LLM source is held to the same model-risk rules as a model. Its balanced directional accuracy over its
last ``accuracy_window`` realisation dates (the signals realised by the close, scored by the validated
direction) stops it below ``stop_accuracy`` and lets it go again at ``resume_accuracy``
(:func:`~python_models.governance.policy.balanced_accuracy`, :func:`~python_models.governance.governor.stop_flags`).
While it is stopped no session is routed. On a routed session each ticker's row is the LLM's signal where it
has one, gated by the confidence floor and the flip count as every governed signal is; a ticker without one
does not trade (``no_llm_signal``). The caps and the drawdown control apply to the book downstream, whichever
source its signals came from.

Only **live** signals are eligible by default (asked within
:data:`~python_models.llm.scores.LIVE_DAYS` days of their close): an LLM asked about an older date may know
what followed it. Each change of the routing state at a close (routed, refused and why, back to governance)
is a decision row of the audit trail (:data:`ACTIONS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from python_models.governance.governor import DECISION_COLUMNS, stop_flags
from python_models.governance.policy import GovernancePolicy, balanced_accuracy, daily_evidence
from python_models.llm.scores import SIGNS, is_live

#: The routing modes (settings ``llm_fallback``).
MODES = ("off", "all_stopped", "always")
#: The decision rows routing writes: the book follows the LLM source from this close (``route``), follows
#: governance again (``unroute``), or would follow the LLM but may not (``route_refused``, with why).
ACTIONS = ("route", "unroute", "route_refused")
#: ``ml.governed_signals.model`` of a routed row: this prefix and the LLM model that answered.
LLM_PREFIX = "llm:"
#: The source's name in the audit trail.
SOURCE = "llm"
#: A session's routing state: the book follows the LLM source, follows governance, or routing is wanted and
#: refused because the source is stopped or has no eligible signal.
ROUTED, GOVERNANCE, REFUSED_STOPPED, REFUSED_NO_SIGNAL = "routed", "governance", "refused_stopped", "refused_no_signal"
#: What a refusal's reason says when the source is stopped (how :func:`state_of` tells the two refusals apart).
SOURCE_STOPPED = "the LLM source is stopped"
#: Columns of the LLM signals routing reads.
SIGNAL_COLUMNS = ["ticker", "date", "model", "expected_return", "confidence", "called_at"]


@dataclass(frozen=True)
class Routing:
    """Per session (the sessions governed): whether the governed book follows the LLM source (``routed``),
    the source's balanced accuracy and stop, and the decision rows of the changes; ``signals`` the eligible
    LLM signals of the routed sessions (``ticker, asof_date, llm_model, expected_return, confidence``)."""

    routed: pd.Series
    accuracy: pd.Series
    stopped: pd.Series
    decisions: pd.DataFrame
    signals: pd.DataFrame


def eligible_signals(signals: pd.DataFrame, backfill: bool = False) -> pd.DataFrame:
    """The valid signals routing may use (``signals``: :data:`SIGNAL_COLUMNS` of valid signals at the
    signal horizon): the live ones, or every one when ``backfill``; one per (ticker, date), the earliest asked."""
    missing = set(SIGNAL_COLUMNS) - set(signals.columns)
    if missing:
        raise ValueError(f"LLM signals lack columns {sorted(missing)}")
    rows = signals if backfill else signals[is_live(signals["called_at"], signals["date"])]
    rows = rows.assign(date=pd.to_datetime(rows["date"])).sort_values(["ticker", "date", "called_at"])
    return rows.drop_duplicates(["ticker", "date"]).reset_index(drop=True)


def source_stops(
    realised: pd.DataFrame, calendar: pd.DatetimeIndex, horizon: int, policy: GovernancePolicy
) -> tuple[pd.Series, pd.Series]:
    """The LLM source's balanced directional accuracy and emergency stop at each session of ``calendar``.

    ``realised`` holds the eligible signals with their outcome (``ticker, date, direction, y_true``). A
    signal of date ``t`` becomes evidence at the close ``horizon`` sessions after ``t`` (of ``calendar``),
    and is scored by its validated direction (flat is right only on no move), as ``marts.llm_scores`` scores
    it. Full windows only, as for every model: until ``accuracy_window`` realisation dates, no reading and
    no stop.
    """
    empty = pd.Series(np.nan, index=calendar), pd.Series(False, index=calendar)
    done = realised.dropna(subset=["y_true", "direction"])
    if done.empty:
        return empty
    position = calendar.searchsorted(pd.to_datetime(done["date"]))
    at = position + horizon
    inside = (at < len(calendar)) & (position < len(calendar))
    inside &= calendar[np.minimum(position, len(calendar) - 1)] == pd.to_datetime(done["date"]).to_numpy()
    done = done[inside]
    if done.empty:
        return empty
    forecasts = pd.DataFrame(
        {
            "model": SOURCE,
            "ticker": done["ticker"].to_numpy(),
            "asof_date": pd.to_datetime(done["date"]).to_numpy(),
            "target_date": calendar[at[inside]],
            "y_pred": done["direction"].map(SIGNS).to_numpy(float),
            "y_true": done["y_true"].to_numpy(float),
        }
    )
    evidence = daily_evidence(forecasts, baseline=SOURCE, decay_baseline="")
    accuracy = balanced_accuracy(evidence, policy.accuracy_window)[SOURCE]
    accuracy = accuracy.reindex(accuracy.index.union(calendar)).ffill().reindex(calendar)
    return accuracy, stop_flags(accuracy, policy.stop_accuracy, policy.resume_accuracy)


def route(
    active: pd.Series,
    signals: pd.DataFrame,
    accuracy: pd.Series,
    stopped: pd.Series,
    mode: str,
    policy: GovernancePolicy,
    backfill: bool = False,
    initial: str = GOVERNANCE,
) -> Routing:
    """The routing of every session of ``active`` (the model governance made active at each close, "" when
    none), from the ``eligible`` LLM signals (:func:`eligible_signals`) and the source's stop
    (:func:`source_stops`, on the same sessions); ``initial`` is the state before the first session (a
    decision row is written where the state changes)."""
    if mode not in MODES:
        raise ValueError(f"llm_fallback must be one of {MODES}, got {mode!r}")
    sessions = active.index
    counts = signals.groupby("date").size().reindex(sessions, fill_value=0) if len(signals) else None
    counts = counts if counts is not None else pd.Series(0, index=sessions)
    accuracy, stopped = accuracy.reindex(sessions), stopped.reindex(sessions, fill_value=False)
    none_active = active.eq("")
    if mode == "off":
        wanted = pd.Series(False, index=sessions)
    elif mode == "all_stopped":
        wanted = none_active
    else:
        wanted = counts > 0
    state = np.select([~wanted, stopped, counts == 0], [GOVERNANCE, REFUSED_STOPPED, REFUSED_NO_SIGNAL], ROUTED)
    states = pd.Series(state, index=sessions)
    thresholds = (
        f"llm_fallback={mode}, eligible={'live and backfilled' if backfill else 'live'} signals, "
        f"min_confidence={policy.min_confidence}, stop_accuracy={policy.stop_accuracy}, "
        f"resume_accuracy={policy.resume_accuracy}, accuracy_window={policy.accuracy_window}"
    )
    rows = []
    previous = states.shift(1, fill_value=initial)
    for date in sessions[(states != previous).to_numpy()]:
        now, acc = states[date], accuracy[date]
        why = _cause(mode, active[date])
        if now == ROUTED:
            action, reason = "route", f"{why}: {counts[date]} valid LLM signals at this close"
        elif now == GOVERNANCE:
            action = "unroute"
            reason = (
                "the governed book follows governance again"
                if previous[date] == ROUTED
                else "routing is no longer wanted: the governed book goes on following governance"
            )
        elif now == REFUSED_STOPPED:
            action = "route_refused"
            reading = f"balanced directional accuracy {acc:.4f} < {policy.stop_accuracy}"
            reason = f"{why}, but {SOURCE_STOPPED}: {reading}"
        else:
            action, reason = "route_refused", f"{why}, but no eligible LLM signal at this close"
        rows.append(
            {
                "decision_date": date,
                "action": action,
                "model": SOURCE,
                "previous_model": active[date],
                "rolling_accuracy": acc,
                "reason": reason,
                "thresholds": thresholds,
            }
        )
    decisions = pd.DataFrame(rows, columns=DECISION_COLUMNS)
    routed = states.eq(ROUTED)
    return Routing(routed, accuracy, stopped, decisions, _chosen(signals, routed))


def state_of(action: str, reason: str) -> str:
    """The routing state a decision row of :func:`route` started."""
    if action == "route":
        return ROUTED
    if action == "unroute":
        return GOVERNANCE
    return REFUSED_STOPPED if SOURCE_STOPPED in reason else REFUSED_NO_SIGNAL


def resume_route(
    active: pd.Series,
    since: pd.Timestamp,
    stored: pd.DataFrame,
    signals: pd.DataFrame,
    accuracy: pd.Series,
    stopped: pd.Series,
    mode: str,
    policy: GovernancePolicy,
    backfill: bool = False,
) -> Routing:
    """The routing of a daily refresh that governs the sessions of ``active`` after ``since``.

    The sessions up to ``since`` keep the routing the stored audit trail gives them (``stored``: the
    routing decision rows, ``decision_date, action, reason``): a session is routed when the last decision at
    or before it is ``route``. The new sessions are routed from the state the trail leaves at ``since``, so
    a decision row is written exactly where the state changes from what is stored, and the trail's last
    decision at each new session says whether it is routed (what the signal gate checks), even where a
    signal that arrived late would have routed an earlier session otherwise.
    """
    stored = stored.assign(decision_date=pd.to_datetime(stored["decision_date"]).astype("datetime64[ns]"))
    stored = stored.sort_values("decision_date", kind="stable")
    before = active.index[active.index <= since]
    on_or_before = stored[stored["decision_date"] <= since]
    initial = state_of(*on_or_before.iloc[-1][["action", "reason"]]) if len(on_or_before) else GOVERNANCE
    new = route(active[active.index > since], signals, accuracy, stopped, mode, policy, backfill, initial)
    last = pd.merge_asof(
        pd.DataFrame({"date": pd.DatetimeIndex(before).astype("datetime64[ns]")}),
        stored.rename(columns={"decision_date": "date"})[["date", "action"]],
        on="date",
        direction="backward",
    )
    routed = pd.concat([pd.Series(last["action"].eq("route").to_numpy(), index=before), new.routed])
    return Routing(routed, accuracy, stopped, new.decisions, _chosen(signals, routed))


def _chosen(signals: pd.DataFrame, routed: pd.Series) -> pd.DataFrame:
    """The eligible signals of the routed sessions, as :attr:`Routing.signals`."""
    rows = signals[signals["date"].isin(routed.index[routed.to_numpy()])] if len(signals) else signals
    rows = rows.rename(columns={"date": "asof_date", "model": "llm_model"})
    return rows[["ticker", "asof_date", "llm_model", "expected_return", "confidence"]].reset_index(drop=True)


def _cause(mode: str, active: str) -> str:
    if mode == "always":
        return "llm_fallback=always (on demand)"
    return "every quantitative model signals could follow is stopped" if active == "" else f"{active} is active"
