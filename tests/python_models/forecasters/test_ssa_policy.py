"""MSSA-RL: the learned keep / refit / shorten policy over SAMoSSA, against hand computations."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from python_models.forecasters.changepoint import last_break
from python_models.forecasters.ssa import Samossa
from python_models.forecasters.ssa_policy import ACTIONS, QTable, SsaPolicy, skill, state_index


def _panel(n_tickers: int = 3, n: int = 600, seed: int = 0, shift_at: int | None = None) -> pd.DataFrame:
    """Noise returns, each ticker with a slow sinusoidal drift; from ``shift_at`` on its drift changes sign."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2012-01-02", periods=n)
    rows = []
    for k in range(n_tickers):
        drift = 0.002 * np.sin(2 * np.pi * np.arange(n) / 120 + k)
        if shift_at is not None:
            drift[shift_at:] *= -1
        rows.append(pd.DataFrame({"ticker": f"T{k}", "date": dates, "log_return": drift + rng.normal(0, 0.01, n)}))
    return pd.concat(rows, ignore_index=True)


def test_the_q_table_is_the_average_reward_and_a_rarely_seen_state_refits():
    table = QTable()
    rewards = np.array([[0.4, -0.2, 0.3], [0.3, 0.0, -0.1], [-0.1, 0.2, 0.2]])
    for r in rewards:
        table.update(0, r)
    table.update(3, np.array([0.0, 0.0, 1.0]))
    assert_allclose(table.values[0], rewards.mean(axis=0), atol=1e-15)
    assert table.visits[0].tolist() == [3, 3, 3]
    policy = table.policy(min_visits=2)
    assert ACTIONS[policy[0]] == "keep"  # the best average in state 0 (0.2 against 0.0 and 0.133)
    assert ACTIONS[policy[3]] == "refit"  # seen once: too rarely to trust its best action
    assert ACTIONS[table.policy(min_visits=1)[3]] == "shorten"


def test_skill_is_one_minus_the_mse_ratio_to_a_zero_forecast():
    r, f = np.array([0.01, -0.02, 0.03]), np.array([0.0, -0.01, 0.01])
    assert skill(r, f) == pytest.approx(1 - ((0.01**2) + 0.01**2 + 0.02**2) / (0.01**2 + 0.02**2 + 0.03**2))
    assert skill(r, np.zeros(3)) == 0.0


def test_every_reward_is_the_skill_of_a_samossa_fitted_on_its_own_window():
    """The first decision, by hand: each action's fit on its window (keep: the span before the
    previous decision; refit: the span before this one; shorten: half of it), its one-session
    forecasts over the block that starts ``lag`` sessions after the decision (as the walk-forward
    uses a fit after its purge and embargo), their skill; the state from CUSUM and the kept fit's
    last block before the decision."""
    panel = _panel()
    model = SsaPolicy()
    fit = model.fit(panel)
    r = panel[panel["ticker"] == "T1"].set_index("date")["log_return"]
    n, block, lag = len(r), model.block, model.lag
    span = n // 2
    start = n - lag - block  # the last decision's block ends at the window's end ...
    while start - block >= span + block:  # ... and the first is the earliest a block apart with a kept fit
        start -= block
    row = fit.experience[(fit.experience["ticker"] == "T1")].iloc[0]
    assert row["block_start"] == r.index[start]
    windows = {
        "keep": (start - block - span, start - block),
        "refit": (start - span, start),
        "shorten": (start - span // 2, start),
    }
    scored = slice(start + lag, start + lag + block)
    origins = r.index[scored.start - 1 : scored.stop - 1]
    realised = r.to_numpy()[scored]
    for action, (lo, hi) in windows.items():
        own = Samossa().fit(r.iloc[lo:hi])
        want = skill(realised, own.forecast(r.iloc[: scored.stop], origins, (1,)).mean[:, 0])
        assert row[f"reward_{action}"] == pytest.approx(want, rel=1e-9, abs=1e-12)
    kept = Samossa().fit(r.iloc[start - block - span : start - block])
    last = r.iloc[start - span : start]
    brk = last_break(last)
    past_skill = skill(
        r.to_numpy()[start - block : start],
        kept.forecast(r.iloc[:start], r.index[start - block - 1 : start - 1], (1,)).mean[:, 0],
    )
    assert row["state"] == state_index(brk is not None and len(last) - brk <= block, past_skill > 0)
    # the Q-table is the average reward per state over the experience, and the policy its argmax
    q = fit.experience.groupby("state")[[f"reward_{a}" for a in ACTIONS]].mean()
    for state, values in q.iterrows():
        assert_allclose([fit.params[f"q_{state}_{a}"] for a in ACTIONS], values.to_numpy(), rtol=1e-12)


def test_the_uplift_scores_each_block_with_what_the_blocks_before_it_taught():
    """Out of sample within the window: on each block after the first, the action the policy
    learned from the earlier blocks (per state, the best average reward) against the single action
    best on average over them; a hand loop with pandas."""
    fit = SsaPolicy(min_visits=1).fit(_panel(n_tickers=6, n=800, seed=2, shift_at=500))
    exp = fit.experience
    columns = [f"reward_{a}" for a in ACTIONS]
    blocks = sorted(exp["block_start"].unique())
    assert len(blocks) >= 3
    gains = []
    for block in blocks[1:]:
        past, now = exp[exp["block_start"] < block], exp[exp["block_start"] == block]
        per_state = past.groupby("state")[columns].mean()
        fixed = past[columns].mean().to_numpy().argmax()
        for _, row in now.iterrows():
            rewards = row[columns].to_numpy(float)
            # a state not seen before takes refit (fewer visits than min_visits = 1)
            pick = per_state.loc[row["state"]].to_numpy().argmax() if row["state"] in per_state.index else 1
            gains.append(rewards[pick] - rewards[fixed])
    assert fit.diagnostics["policy_uplift"] == pytest.approx(np.mean(gains), rel=1e-12, abs=1e-15)
    assert fit.diagnostics["learned"] == float(fit.diagnostics["policy_uplift"] > 0)
    assert set(fit.actions.values()) <= set(ACTIONS) and len(fit.series) == 6
    assert fit.params["policy_uplift"] == fit.diagnostics["policy_uplift"]


def test_a_window_too_short_for_the_span_and_blocks_is_refused():
    with pytest.raises(ValueError, match="too short"):
        SsaPolicy().fit(_panel(n=240))


def test_a_window_with_one_block_has_no_uplift_and_stores_none():
    fit = SsaPolicy().fit(_panel(n=500))  # the walk-forward tests' 500-session windows: one block
    assert fit.experience["block_start"].nunique() == 1
    assert np.isnan(fit.diagnostics["policy_uplift"]) and fit.diagnostics["learned"] == 0.0
    assert "policy_uplift" not in fit.params and np.isfinite(fit.params.to_numpy()).all()
