"""Portfolio-level drawdown control: de-risk at a drawdown trigger, and an emergency stop.

The state at each close comes from the strategy's own equity up to and including that close:

* ``normal`` — full size;
* ``de_risked`` — entered when the drawdown from the peak reaches ``de_risk_at``; the risky
  positions are scaled by ``de_risk_scale``; left (back to normal) when the drawdown recovers
  above ``re_risk_at`` (hysteresis, so the book does not flap around the trigger);
* ``stopped`` — the emergency stop, entered from any state when the drawdown reaches
  ``stop_at``: no risky positions for ``stop_sessions`` sessions. A book in cash cannot climb
  back to its old peak, so on resuming the peak is reset to the equity of that close.

Because the scale changes the returns that decide later states, :func:`apply_drawdown_control`
solves for the path by fixed-point iteration: run the backtest with the current scales, derive
the states from its equity, repeat until they agree. The states before the first session that
changed are final after each pass (they depend only on earlier returns), so it ends in at most
one pass per session and in practice in a few.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

STATES = ("normal", "de_risked", "stopped")


@dataclass(frozen=True)
class DrawdownPolicy:
    """Drawdowns as positive fractions of the peak (0.15 = a 15 % fall)."""

    de_risk_at: float = 0.15
    re_risk_at: float = 0.10
    de_risk_scale: float = 0.5
    stop_at: float = 0.25
    stop_sessions: int = 21

    def __post_init__(self) -> None:
        if not 0.0 < self.re_risk_at <= self.de_risk_at < self.stop_at < 1.0:
            raise ValueError(
                "need 0 < re_risk_at <= de_risk_at < stop_at < 1, got "
                f"{self.re_risk_at}, {self.de_risk_at}, {self.stop_at}"
            )
        if not 0.0 <= self.de_risk_scale <= 1.0:
            raise ValueError(f"de_risk_scale must lie in [0, 1], got {self.de_risk_scale}")
        if self.stop_sessions < 1:
            raise ValueError(f"stop_sessions must be at least 1, got {self.stop_sessions}")


def drawdown_states(net_returns: Iterable[float], policy: DrawdownPolicy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """State, risky-position scale and drawdown at each close, from the net returns of the
    sessions (the return of session ``t`` is known at its close and sets the state there).

    Returns ``(states, scales, drawdowns)``; ``states`` holds indices into :data:`STATES`.
    """
    r = np.asarray(list(net_returns) if not isinstance(net_returns, np.ndarray) else net_returns, dtype=float)
    if not np.all(np.isfinite(r)):
        raise ValueError("net returns must be finite")
    scale_of = (1.0, policy.de_risk_scale, 0.0)
    states = np.zeros(len(r), dtype=np.int64)
    drawdowns = np.zeros(len(r))
    equity, peak, state, cool = 1.0, 1.0, 0, 0
    for t, x in enumerate(r):
        equity *= 1.0 + x
        if state == 2:
            cool -= 1
            if cool == 0:
                state, peak = 0, equity
        else:
            peak = max(peak, equity)
            dd = 1.0 - equity / peak
            if dd >= policy.stop_at:
                state, cool = 2, policy.stop_sessions
            elif state == 0 and dd >= policy.de_risk_at:
                state = 1
            elif state == 1 and dd < policy.re_risk_at:
                state = 0
        states[t] = state
        drawdowns[t] = equity / peak - 1.0
    return states, np.array([scale_of[s] for s in states]), drawdowns


def scale_book(weights: pd.DataFrame, scales: pd.Series, safe: Iterable[str] = ()) -> pd.DataFrame:
    """Decisions with the risky columns multiplied by the scale of their close.

    ``weights`` holds the decisions (dates by tickers; the book drifts between them). A session
    where the scale changes becomes a decision too, re-issuing the last decision's weights at
    the new scale. Columns in ``safe`` are not scaled; the freed weight is cash.
    """
    sessions = scales.index
    unknown = weights.index.difference(sessions)
    if len(unknown):
        raise ValueError(f"decisions on sessions without a scale: {list(unknown)[:3]}")
    s = scales.to_numpy(dtype=float)
    changed = sessions[np.r_[False, s[1:] != s[:-1]]]
    dates = weights.index.union(changed)
    full = weights.reindex(pd.DatetimeIndex(sessions)).ffill().loc[dates]
    first = weights.index.min()
    full = full.loc[full.index >= first]
    risky = [c for c in full.columns if c not in set(safe)]
    full[risky] = full[risky].mul(scales.reindex(full.index), axis=0)
    return full


def apply_drawdown_control(
    weights: pd.DataFrame,
    run: Callable[[pd.DataFrame], pd.DataFrame],
    sessions: pd.DatetimeIndex,
    policy: DrawdownPolicy,
    safe: Iterable[str] = (),
    max_passes: int = 200,
    initial: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The decisions with the drawdown control applied, and the per-session states.

    ``run`` backtests a decision frame and returns a frame indexed by ``sessions`` with a
    ``net_return`` column (the pipeline's :func:`python_models.backtest.engine.run_backtest` with its
    settings). Returns ``(controlled_weights, states)`` where ``states`` has ``state``,
    ``scale`` and ``drawdown`` per session.

    ``initial`` starts the iteration from known scales (the stored path of an earlier run;
    sessions it lacks start at 1). The path is causal (the scale at a close depends only on
    earlier scales), so the fixed point is unique and the start only changes how soon it is
    reached: extending a stored path by a session takes one or two passes.
    """
    safe = list(safe)
    scales = pd.Series(1.0, index=sessions)
    if initial is not None:
        scales = initial.reindex(sessions).fillna(1.0).astype(float)
    for _ in range(max_passes):
        controlled = scale_book(weights, scales, safe)
        daily = run(controlled)
        states, new, drawdowns = drawdown_states(daily["net_return"].reindex(sessions).fillna(0.0).to_numpy(), policy)
        if np.array_equal(new, scales.to_numpy()):
            frame = pd.DataFrame(
                {"state": [STATES[s] for s in states], "scale": new, "drawdown": drawdowns}, index=sessions
            )
            return controlled, frame
        scales = pd.Series(new, index=sessions)
    raise RuntimeError(f"drawdown control did not settle in {max_passes} passes")
