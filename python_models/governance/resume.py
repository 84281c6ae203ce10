"""Where the daily refresh picks governance up: the state the stored rows leave, and how far back
each step's inputs must reach so that the sessions it adds are the ones a rebuild writes.

A resumed run decides only the sessions after the last stored one (:class:`GovernanceState`),
but its windows look back: the evidence window before the next review, the accuracy window,
the signals' confidence windows and flip count, and the drift's training window. Each ``*_start``
function gives the first session a step reads; reading less would change the numbers, reading
more only costs time.
"""

from __future__ import annotations

import pandas as pd

from python_models.governance.drift import RECENT_WINDOW
from python_models.governance.governor import GovernanceState
from python_models.governance.policy import GovernancePolicy
from python_models.governance.signals import CONFIDENCE_WINDOW
from python_models.sessions import sessions_before


def state_from_status(
    rows: pd.DataFrame, date: pd.Timestamp, last_review: pd.Timestamp, baseline: str
) -> GovernanceState:
    """The state a run left at the close of ``date``, from its ``marts.model_risk`` rows there
    (``model, stopped, active, accuracy_stop, decay_cusum, needs_retrain``) and its last review.

    The promoted candidate is the active model unless that is the baseline: a promoted model is
    active unless stopped, and a stop reverts it the same close, so an inactive promoted model
    cannot be left over.
    """
    leader = rows.loc[rows["active"], "model"]
    promoted = leader.iloc[0] if len(leader) and leader.iloc[0] != baseline else ""

    def by_model(column: str, kind: type) -> dict:
        return {m: kind(x) for m, x in zip(rows["model"], rows[column], strict=True)}

    return GovernanceState(
        date=date,
        promoted=promoted,
        stopped=by_model("stopped", bool),
        last_review=last_review,
        accuracy_stop=by_model("accuracy_stop", bool),
        cusum=by_model("decay_cusum", float),  # NaN: still warming up (the recursion starts at 0)
        decayed=by_model("needs_retrain", bool),
    )


def has_new_sessions(calendar: pd.DatetimeIndex, state: GovernanceState) -> bool:
    """Whether ``calendar`` holds a session after the state's: otherwise there is nothing to govern."""
    return bool(len(calendar)) and calendar[-1] > state.date


def evidence_start(
    calendar: pd.DatetimeIndex,
    state: GovernanceState,
    policy: GovernancePolicy,
    confidence_window: int = CONFIDENCE_WINDOW,
) -> pd.Timestamp:
    """First session the forecasts, returns and variance ratios of a resumed run are read from.

    Every input a decision after ``state.date`` reads: the evidence window before a review (with
    a session to enter the strategies), the forecasts realised in it, and the accuracy window;
    the confidence window or the decay CUSUM's reference window when it is the longer one (the
    signals read the same inputs).
    """
    longest = max(policy.evidence_window + 1, confidence_window, policy.decay_reference)
    lookback = longest + policy.accuracy_window + 2 * policy.horizon
    return sessions_before(calendar, min(state.date, state.last_review), lookback)


def signals_start(
    calendar: pd.DatetimeIndex,
    state: GovernanceState,
    policy: GovernancePolicy,
    confidence_window: int = CONFIDENCE_WINDOW,
) -> pd.Timestamp:
    """First origin the signal step of a resumed run reads: the confidence windows (with the
    horizon's realisation lag) and the flip count reach back less far than the evidence."""
    reach = confidence_window + 2 * policy.horizon + policy.flip_window + 5
    return sessions_before(calendar, state.date, reach)


def drift_start(
    calendar: pd.DatetimeIndex,
    first_review: pd.Timestamp,
    policy: GovernancePolicy,
    train_window: int,
    recent_window: int = RECENT_WINDOW,
) -> pd.Timestamp:
    """First session of features the drift at the new reviews reads (the first of them on
    ``first_review``): each review's recent window and the training window before it."""
    reach = train_window + recent_window + policy.review_every + 5
    return sessions_before(calendar, first_review, reach)


def active_history(stored: pd.Series, state: GovernanceState, new: pd.Series) -> pd.Series:
    """The active model per session as the trade gate reads it: the stored sessions up to the
    state's (the flip count looks back over them) followed by the newly decided ones."""
    return pd.concat([stored[stored.index <= state.date], new])
