"""MSSA-RL: SAMoSSA with a learned intervention policy (keep, refit or shorten the window).

The change-point SSA of :mod:`python_models.forecasters.changepoint` applies a fixed rule (restart
after the latest CUSUM break). This model *learns* when to intervene, from the past only, by
tabular Q-learning pooled over the universe's stocks.

**Actions**, at a decision point ``t`` (the end of a stretch of returns):

``keep``
    forecast with the fit made one block (``block`` sessions) earlier, on the ``span`` sessions
    before that;
``refit``
    fit on the last ``span`` sessions;
``shorten``
    fit on the last ``span // 2`` sessions (forget the older half; at least the fewest SAMoSSA
    fits, ``3 * rows + max(horizons)``).

**States** (four): whether CUSUM (:func:`~python_models.forecasters.changepoint.last_break`) finds
a break in the last block, and whether the kept fit's one-session forecasts over the last block
beat the zero forecast (skill ``1 - sum (r - f)^2 / sum r^2`` above 0).

**Training**, inside each walk-forward training window and nothing after it: decision points a
block apart in the window's second half; at each, every stock's state is read and every action's
fit forecasts, one session ahead, the block that starts ``lag`` sessions later (the walk-forward's
purge and embargo: a fit made at an origin is first used that many sessions later). The reward of
an action is its skill over that block.
Every action's reward is observed (the fits are counterfactual), so each block updates all three
Q-values of the state seen, ``Q(s, a) += (r - Q(s, a)) / n(s, a)``: a sample average, which is
tabular Q-learning with step ``1 / n`` and no discount. No discount because the state does not
depend on the action taken (it is read from the kept fit, whatever was done), so the next state's
value is the same for every action and cannot change which is best: the problem is a contextual
bandit, and a discount would only add a constant.

**Acting**, at the end of the training window: each stock's state picks ``argmax_a Q(s, a)``; a
state seen fewer than ``min_visits`` times takes ``refit``. The fit's diagnostics record the
Q-table, the visits, the policy and its ``policy_uplift``
(:meth:`SsaPolicy.out_of_sample_uplift`): on each block, the reward of the policy learned from the
blocks before it minus that of the best single action learned from them. An uplift of 0 or below
means the policy learned nothing a fixed rule would not do. ``ml.model_fits`` (model ``mssa_rl``)
keeps the Q-values, the policy and the uplift of every fit in its ``params``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from python_models.forecasters.base import DEFAULT_HORIZONS, PanelForecaster, validate_horizons, validate_panel
from python_models.forecasters.changepoint import last_break
from python_models.forecasters.mssa import MssaResult
from python_models.forecasters.ssa import SamossaResult, fit_windows, samossa_result

ACTIONS: tuple[str, ...] = ("keep", "refit", "shorten")
#: (break in the last block, the kept fit beat the zero forecast over it)
STATES: tuple[tuple[bool, bool], ...] = ((False, False), (False, True), (True, False), (True, True))


def state_index(broke: bool, skilful: bool) -> int:
    """Position of a state in :data:`STATES`."""
    return 2 * int(broke) + int(skilful)


def skill(returns: np.ndarray, forecasts: np.ndarray) -> float:
    """``1 - sum (r - f)^2 / sum r^2``: above 0 when the forecasts beat a forecast of zero."""
    denominator = float(np.sum(returns**2))
    return 1.0 - float(np.sum((returns - forecasts) ** 2)) / denominator if denominator > 0 else 0.0


@dataclass
class QTable:
    """Average reward of each (state, action) and how often it was seen."""

    values: np.ndarray = field(default_factory=lambda: np.zeros((len(STATES), len(ACTIONS))))
    visits: np.ndarray = field(default_factory=lambda: np.zeros((len(STATES), len(ACTIONS)), dtype=np.int64))

    def update(self, state: int, rewards: np.ndarray) -> None:
        """One block of one stock: every action's reward in ``state`` (step 1 / visits)."""
        self.visits[state] += 1
        self.values[state] += (rewards - self.values[state]) / self.visits[state]

    def policy(self, min_visits: int) -> np.ndarray:
        """The action index per state: the best average reward, ``refit`` where seen too rarely."""
        best = np.argmax(self.values, axis=1)
        return np.where(self.visits.min(axis=1) >= min_visits, best, ACTIONS.index("refit"))


@dataclass
class SsaPolicyResult(MssaResult):
    """Per stock, the fit its state's action chose (``series``, a :class:`SamossaResult` each,
    forecasting as :class:`~python_models.forecasters.mssa.MssaResult` does)."""

    actions: dict[str, str] = field(default_factory=dict)
    #: the training blocks: ``ticker, block_start`` (its first session), ``state`` and each action's reward
    experience: pd.DataFrame = field(default_factory=pd.DataFrame)


class SsaPolicy(PanelForecaster):
    """SAMoSSA whose window is kept, refitted or shortened by a learned policy (module docstring).

    Parameters
    ----------
    block : int
        Sessions between decisions (the walk-forward's refit cadence, 63 by default).
    span : int, optional
        Sessions a ``refit`` uses; default half the training window, so that the training blocks
        fill the other half.
    lag : int
        Sessions between the end of a fit's data and the first origin it forecasts: the
        walk-forward's purge plus embargo (63 + 5 by default). Training scores each action over the
        block that starts ``lag`` sessions after its decision, as the walk-forward will use it.
    min_visits : int
        Fewest visits of a state before its learned action is used.
    rows, energy, horizons
        The SAMoSSA decomposition (:class:`~python_models.forecasters.ssa.Samossa`).
    """

    def __init__(
        self,
        block: int = 63,
        span: int | None = None,
        lag: int = 68,
        min_visits: int = 10,
        rows: int = 21,
        energy: float = 0.9,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
    ) -> None:
        if block < 5 or min_visits < 1 or lag < 0:
            raise ValueError(f"block must be >= 5, lag >= 0 and min_visits >= 1, got {block}, {lag}, {min_visits}")
        self.block, self.span, self.lag, self.min_visits = block, span, lag, min_visits
        self.refit_every = block  # the walk-forward refits when the policy decides again
        self.rows, self.energy, self.horizons = rows, energy, validate_horizons(horizons)
        self.name = "mssa_rl"

    def _fits(self, returns: np.ndarray, ends: Sequence[int], length: int) -> list[list[SamossaResult]]:
        """SAMoSSA of every stock (rows of ``returns``) on the ``length`` sessions before each of ``ends``:
        one batched decomposition per end."""
        out = []
        for end in ends:
            window = returns[:, end - length : end]
            levels = np.concatenate([np.zeros((len(window), 1)), np.cumsum(window, axis=1)], axis=1)
            fit = fit_windows(levels, self.rows, self.horizons, self.energy)
            out.append([samossa_result(fit, i, self.rows, levels.shape[1]) for i in range(len(window))])
        return out

    def fit(self, panel: pd.DataFrame) -> SsaPolicyResult:
        p = validate_panel(panel)
        wide = p.pivot(index="date", columns="ticker", values="log_return")
        tickers = [t for t in wide.columns if wide[t].notna().all()]
        if not tickers:
            raise ValueError("MSSA-RL needs a ticker with no missing return in the window")
        returns = wide[tickers].to_numpy(float).T
        n = returns.shape[1]
        span = self.span or n // 2
        floor = 3 * self.rows + max(self.horizons)  # the fewest sessions SAMoSSA fits
        short = max(span // 2, floor)
        # decision points, a block apart: the first needs a fit one block before it, the last scores
        # the block lag sessions after it, ending at the window's end
        first, last = span + self.block, n - self.lag - self.block
        if span < floor or last < first:
            raise ValueError(
                f"a window of {n} sessions is too short for span {span}, block {self.block} and lag {self.lag}"
            )
        starts = list(range(last, first - 1, -self.block))[::-1]
        table = QTable()
        experience: list[tuple] = []
        series = {t: wide[t] for t in tickers}
        ends = sorted({*starts, *(s - self.block for s in starts)})
        refits = dict(zip(ends, self._fits(returns, ends, span), strict=True))
        shortened = dict(zip(starts, self._fits(returns, starts, short), strict=True))
        for start in starts:
            # the block the decision's fits forecast: lag sessions on, inside the window
            scored_from, scored_to = start + self.lag, start + self.lag + self.block
            for i, ticker in enumerate(tickers):
                r = series[ticker]
                state = self._state(r, start, refits[start - self.block][i], span)
                origins = r.index[scored_from - 1 : scored_to - 1]  # each forecasts the next session
                realised = returns[i, scored_from:scored_to]
                rewards = np.array(
                    [
                        skill(realised, fit.forecast(r.iloc[:scored_to], origins, (1,)).mean[:, 0])
                        for fit in (refits[start - self.block][i], refits[start][i], shortened[start][i])
                    ]
                )
                table.update(state, rewards)
                experience.append((ticker, r.index[start], state, *rewards))
        policy = table.policy(self.min_visits)
        # acting at the window's end: each stock's state now, and the fit its action asks for
        keep, refit, shorten = (
            self._fits(returns, [end], length)[0] for end, length in ((n - self.block, span), (n, span), (n, short))
        )
        chosen, actions = {}, {}
        for i, ticker in enumerate(tickers):
            action = int(policy[self._state(series[ticker], n, keep[i], span)])
            chosen[ticker] = (keep, refit, shorten)[action][i]
            actions[ticker] = ACTIONS[action]
        q_values = {f"q_{s}_{a}": table.values[s, j] for s in range(len(STATES)) for j, a in enumerate(ACTIONS)}
        experience_frame = pd.DataFrame(
            experience, columns=["ticker", "block_start", "state", *(f"reward_{a}" for a in ACTIONS)]
        )
        diagnostics = self._diagnostics(table, policy, experience_frame, actions)
        # in the params too: ml.model_fits keeps a fit's params as JSON, where SQL can read what was learned
        # (the uplift only where measured: a window with a single block has none, and JSON has no NaN)
        keys = ("policy_uplift", *(f"policy_state_{s}" for s in range(len(STATES))))
        learned = {k: diagnostics[k] for k in keys if np.isfinite(diagnostics[k])}
        return SsaPolicyResult(
            params=pd.Series({**q_values, **learned}),
            diagnostics=diagnostics,
            series=chosen,
            actions=actions,
            experience=experience_frame,
        )

    def _state(self, r: pd.Series, at: int, kept: SamossaResult, span: int) -> int:
        """The state before session position ``at``: a CUSUM break (over the last ``span`` sessions) in
        the last block, and the kept fit's skill over that block."""
        past = r.iloc[:at]
        recent = past.iloc[-span:]
        brk = last_break(recent)
        broke = brk is not None and len(recent) - brk <= self.block
        origins = r.index[at - self.block - 1 : at - 1]
        realised = r.to_numpy(float)[at - self.block : at]
        return state_index(broke, skill(realised, kept.forecast(past, origins, (1,)).mean[:, 0]) > 0)

    def out_of_sample_uplift(self, experience: pd.DataFrame) -> float:
        """The policy's reward over the best fixed action's, each learned from earlier blocks only.

        For every training block after the first, a Q-table of the blocks before it gives the
        policy (with ``min_visits``) and the best single action (the highest average reward); the
        uplift is the mean, over that block's stocks and every such block, of the reward of the
        action the policy picks minus that of the fixed action. NaN with a single block. Measured
        in the window, on blocks the policy had not seen, so a policy that only fits noise scores
        about 0 or below."""
        rewards = experience[[f"reward_{a}" for a in ACTIONS]].to_numpy(float)
        states = experience["state"].to_numpy()
        blocks = experience["block_start"].to_numpy()
        gains = []
        for block in np.unique(blocks)[1:]:
            before, now = blocks < block, blocks == block
            past = QTable()
            for state, reward in zip(states[before], rewards[before], strict=True):
                past.update(int(state), reward)
            policy = past.policy(self.min_visits)
            fixed = int(np.argmax(rewards[before].mean(axis=0)))
            picked = policy[states[now].astype(int)]
            gains.extend(rewards[now][np.arange(now.sum()), picked] - rewards[now][:, fixed])
        return float(np.mean(gains)) if gains else float("nan")

    def _diagnostics(
        self, table: QTable, policy: np.ndarray, experience: pd.DataFrame, actions: dict[str, str]
    ) -> dict[str, float]:
        uplift = self.out_of_sample_uplift(experience)
        out = {
            "policy_uplift": uplift,
            "learned": float(uplift > 0),
            "blocks": float(len(experience)),
            "converged": 1.0,
        }
        out.update({f"policy_state_{s}": float(policy[s]) for s in range(len(STATES))})
        out.update({f"visits_state_{s}": float(table.visits[s, 0]) for s in range(len(STATES))})
        out.update({f"share_{a}": float(np.mean([v == a for v in actions.values()])) for a in ACTIONS})
        return out
