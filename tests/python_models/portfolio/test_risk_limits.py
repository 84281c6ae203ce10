"""Drawdown control (de-risk trigger, emergency stop) and attribution of backtest returns."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from python_models.backtest.engine import run_backtest
from python_models.portfolio.risk_limits import (
    STATES,
    DrawdownPolicy,
    apply_drawdown_control,
    drawdown_states,
    scale_book,
)

POLICY = DrawdownPolicy(de_risk_at=0.15, re_risk_at=0.10, de_risk_scale=0.5, stop_at=0.25, stop_sessions=3)


def names(states):
    return [STATES[s] for s in states]


def test_states_on_a_hand_path():
    # equity: 1, 0.9, 0.85 (-15 %: de-risk), 0.95 (-5 %: re-risk), 0.8 (-20 %: de-risk), 0.75 (-25 %: stop)
    equity = np.array([1.0, 0.9, 0.85, 0.95, 0.80, 0.75, 0.74, 0.73, 0.72, 0.70, 0.60])
    r = equity[1:] / equity[:-1] - 1
    r = np.concatenate([[0.0], r])
    states, scales, dd = drawdown_states(r, POLICY)
    assert names(states) == [
        "normal",
        "normal",
        "de_risked",
        "normal",
        "de_risked",
        "stopped",
        "stopped",
        "stopped",
        "normal",  # three sessions after the stop: resume, and the peak resets to 0.72
        "normal",  # 0.70 / 0.72: -2.8 %
        "de_risked",  # 0.60 / 0.72: -16.7 %
    ]
    assert_allclose(scales, [1, 1, 0.5, 1, 0.5, 0, 0, 0, 1, 1, 0.5])
    assert_allclose(dd[:6], equity[:6] - 1.0)
    assert_allclose(dd[10], 0.60 / 0.72 - 1)


def test_hysteresis_holds_the_de_risked_state_between_the_thresholds():
    equity = np.array([1.0, 0.84, 0.88, 0.89, 0.91])  # -16 %, -12 %, -11 %, -9 %
    r = np.concatenate([[0.0], equity[1:] / equity[:-1] - 1])
    assert names(drawdown_states(r, POLICY)[0]) == ["normal", "de_risked", "de_risked", "de_risked", "normal"]


def test_bad_policies_and_inputs_are_refused():
    with pytest.raises(ValueError):
        DrawdownPolicy(de_risk_at=0.3, stop_at=0.25)
    with pytest.raises(ValueError):
        DrawdownPolicy(re_risk_at=0.2, de_risk_at=0.15)
    with pytest.raises(ValueError, match="finite"):
        drawdown_states([0.0, np.nan], POLICY)


def test_scale_book_reissues_the_last_decision_where_the_scale_changes():
    sessions = pd.bdate_range("2021-01-01", periods=6)
    w = pd.DataFrame({"A": [0.4, 0.6], "BOND": [0.3, 0.2]}, index=sessions[[0, 3]])
    scales = pd.Series([1, 1, 0.5, 0.5, 0.0, 1], index=sessions, dtype=float)
    out = scale_book(w, scales, safe=["BOND"])
    assert list(out.index) == list(sessions[[0, 2, 3, 4, 5]])
    assert_allclose(out["A"], [0.4, 0.2, 0.3, 0.0, 0.6])
    assert_allclose(out["BOND"], [0.3, 0.3, 0.2, 0.2, 0.2])


def crash(n=300, seed=1):
    """One asset that rallies, crashes 40 % over 40 sessions, then recovers."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0005, 0.004, n)
    r[100:140] = -0.0127  # (1 - 0.0127)^40 ~ 0.60
    r[140:] += 0.002
    sessions = pd.bdate_range("2015-01-01", periods=n)
    return pd.DataFrame({"A": r}, index=sessions)


def test_control_settles_on_a_self_consistent_path_and_cuts_the_crash():
    returns = crash()
    sessions = returns.index
    weights = pd.DataFrame({"A": 0.9}, index=sessions)

    def run(w):
        return run_backtest(w, returns, cost_bps=10.0, execution="next_close")

    controlled, states = apply_drawdown_control(weights, run, sessions, POLICY)
    final = run(controlled)
    again, scales, dd = drawdown_states(final["net_return"].to_numpy(), POLICY)
    # the states the control used are the states of the path it produced
    assert names(again) == list(states["state"])
    assert_allclose(states["drawdown"], dd)
    assert_allclose(states["scale"], scales)
    # de-risked on the first close with a 15 % drawdown, and stopped later in the crash
    first = int(np.argmax(dd <= -0.15))
    assert states["state"].iloc[first] == "de_risked" and (states["state"].iloc[:first] == "normal").all()
    assert (states["state"] == "stopped").any()
    assert_allclose(controlled.loc[sessions[first], "A"], 0.45)
    uncontrolled = run(weights)
    assert final["drawdown"].min() > uncontrolled["drawdown"].min() + 0.05


def test_contributions_sum_to_the_gross_return_in_every_execution_mode():
    rng = np.random.default_rng(4)
    idx = pd.bdate_range("2020-01-01", periods=250)
    r = pd.DataFrame(rng.normal(0, 0.01, (250, 3)), index=idx, columns=list("abc"))
    w = pd.DataFrame(rng.uniform(0, 0.4, (250, 3)), index=idx, columns=list("abc")).iloc[::7]
    rf = pd.Series(0.0001, index=idx)
    for execution in ("close", "next_close", "next_open"):
        daily, parts = run_backtest(w, r, execution=execution, cash_rate=rf, open_returns=r * 0.3, contributions=True)
        assert list(parts.columns) == ["a", "b", "c", "CASH"]
        assert_allclose(parts.sum(axis=1), daily["gross_return"], atol=1e-15)
    # a hand case: half in a, the rest in cash at rf, held from the close of day 0
    daily, parts = run_backtest(
        pd.DataFrame({"a": [0.5]}, index=idx[:1]), r, cost_bps=0.0, cash_rate=rf, contributions=True
    )
    assert_allclose(parts["a"].iloc[1], 0.5 * r["a"].iloc[1])
    assert_allclose(parts["CASH"].iloc[1], 0.5 * 0.0001)


def test_capacity_decays_with_the_book_by_the_square_root_law():
    from python_models.backtest.capacity import capacity, capacity_curve

    rng = np.random.default_rng(5)
    idx = pd.bdate_range("2018-01-01", periods=500)
    r = pd.DataFrame(rng.normal(0.0008, 0.01, (500, 2)), index=idx, columns=["a", "b"])
    w = pd.DataFrame(rng.uniform(0.1, 0.5, (500, 2)), index=idx, columns=["a", "b"])  # trades every day
    dv = pd.DataFrame(5e7, index=idx, columns=["a", "b"])
    vol = pd.DataFrame(0.01, index=idx, columns=["a", "b"])
    from python_models.backtest.costs import CostModel

    costs = CostModel(commission_bps=1.0, impact_coefficient=0.5)

    def run_at(aum):
        return run_backtest(w, r, costs=costs, dollar_volume=dv, volatility=vol, aum=aum)

    curve = capacity_curve(run_at, [1e5, 1e6, 1e7, 1e8, 1e9])
    assert curve["sharpe_decay"].iloc[0] == 0.0
    assert np.all(np.diff(curve["sharpe"]) < 0) and np.all(np.diff(curve["impact_cost"]) > 0)
    # the first session's trade is the same at every size: its impact grows as sqrt(aum)
    first = [run_at(a)["impact_cost"].iloc[0] for a in (1e6, 4e6)]
    assert_allclose(first[1] / first[0], 2.0, rtol=1e-12)
    assert capacity(curve, 0.10) == curve.loc[curve["sharpe_decay"] <= 0.10, "aum"].max()
    assert np.isnan(capacity(curve.assign(sharpe_decay=0.5), 0.10))
    with pytest.raises(ValueError, match="increasing"):
        capacity_curve(run_at, [1e6, 1e5])


def test_safe_assets_are_held_but_not_counted_as_exposure():
    idx = pd.bdate_range("2020-01-01", periods=5)
    r = pd.DataFrame({"a": 0.01, "BOND": 0.001}, index=idx)
    w = pd.DataFrame({"a": [0.3], "BOND": [0.5]}, index=idx[:1])
    plain = run_backtest(w, r, cost_bps=0.0)
    safe = run_backtest(w, r, cost_bps=0.0, safe_assets=("BOND",))
    assert_allclose(safe["gross_return"], plain["gross_return"])
    assert_allclose(safe["exposure"].iloc[1], 0.3)
    assert_allclose(plain["exposure"].iloc[1], 0.8)


def test_a_stored_path_extended_by_new_sessions_is_the_cold_starts_path():
    returns = crash()
    sessions = returns.index
    weights = pd.DataFrame({"A": 0.9}, index=sessions[::5])

    passes = []

    def run(w):
        passes.append(1)
        return run_backtest(w, returns, cost_bps=10.0, execution="next_close")

    cold, cold_states = apply_drawdown_control(weights, run, sessions, POLICY)
    cold_passes = len(passes)
    # the states stored up to session 199, extended to the end: same decisions, same path, fewer passes
    passes.clear()
    stored = cold_states["scale"].iloc[:200]
    warm, warm_states = apply_drawdown_control(weights, run, sessions, POLICY, initial=stored)
    pd.testing.assert_frame_equal(warm, cold, check_exact=True)
    pd.testing.assert_frame_equal(warm_states, cold_states, check_exact=True)
    assert len(passes) < cold_passes
    # a wrong start is not trusted: the iteration still lands on the one causal path
    wrong = pd.Series(0.5, index=sessions[:200])
    again, again_states = apply_drawdown_control(weights, run, sessions, POLICY, initial=wrong)
    pd.testing.assert_frame_equal(again_states, cold_states, check_exact=True)


HARD = DrawdownPolicy(mode="hard_cap", cap_multiplier=10.0)


def test_the_hard_cap_scales_by_the_cushion_above_a_floor_that_follows_the_peak():
    rng = np.random.default_rng(3)
    r = rng.normal(0.0, 0.012, 400)
    r[150:170] = -0.006
    states, scales, dd = drawdown_states(r, HARD)
    equity, peak = np.cumprod(1 + r), np.maximum.accumulate(np.cumprod(1 + r))
    peak = np.maximum(peak, 1.0)
    cushion = 1 - 0.85 * peak / equity  # the floor at 85 % of the peak, never reset
    hand = np.floor(10 * np.clip(10 * cushion, 0, 1) + 1e-9) / 10
    assert_allclose(scales, hand)
    # fixed points worked out apart: full size while the cushion 1 - 0.85 / (1 + dd) is at least a tenth (dd >
    # -5.6 %), half size at dd = -10 % (cushion 0.0556), nothing at the floor (dd <= -15 %)
    assert (scales[dd > -0.055] == 1).all() and (dd > -0.055).any()
    assert (scales[(dd < -0.096) & (dd > -0.105)] == 0.5).all()
    assert (scales[dd <= -0.15] == 0).all()
    assert_allclose(dd, equity / peak - 1)
    assert list(np.unique(scales)) != [1.0] and (scales < 1).any() and (scales == 1).any()
    assert names(states) == ["normal" if s == 1 else "de_risked" if s > 0 else "stopped" for s in scales]
    with pytest.raises(ValueError, match="cap_multiplier"):
        DrawdownPolicy(mode="hard_cap", cap_multiplier=5.0)  # 5 x 15 % < 1: never a full book
    with pytest.raises(ValueError, match="mode"):
        DrawdownPolicy(mode="hard")


def test_the_hard_cap_holds_the_line_through_a_crash_the_de_risk_mode_overshoots():
    returns = crash()
    sessions = returns.index
    weights = pd.DataFrame({"A": 0.9}, index=sessions)

    def run(w):
        return run_backtest(w, returns, cost_bps=10.0, execution="next_close")

    for policy in (HARD, POLICY):
        controlled, states = apply_drawdown_control(weights, run, sessions, policy)
        final = run(controlled)
        # the path is self-consistent in either mode
        again, scales, _ = drawdown_states(final["net_return"].to_numpy(), policy)
        assert names(again) == list(states["state"])
        assert_allclose(states["scale"], scales)
        worst = (final["equity"] / np.maximum(final["equity"].cummax(), 1.0) - 1).min()
        if policy is HARD:
            # a session's loss (at most 1.27 % of a 0.9 book) is far below 1 / 10 of the cushion's book
            assert worst > -0.15
        else:
            assert worst < -0.15  # the de-risk mode acts once the line is crossed


def test_a_gap_through_the_stop_in_hard_cap_mode_ends_at_the_cushions_scale_with_the_old_peak():
    r = np.r_[np.full(10, 0.01), -0.30, np.full(40, 0.0), np.full(40, 0.02)]
    states, scales, dd = drawdown_states(r, HARD)
    peak = np.prod(1.01 ** np.arange(1, 11)[-1:])  # 1.01^10, the peak before the gap
    assert names(states)[10] == "stopped" and (scales[10:32] == 0).all()  # the stop, 21 sessions after the gap
    # after it the floor is still 85 % of the old peak: the book stays out until the cushion regrows
    equity = np.cumprod(1 + r)
    assert_allclose(dd[31:51], equity[31:51] / peak - 1)
    assert (scales[31:51] == 0).all()
    # and the de_risk mode, on the same path, resumes at full size from a new peak after its stop
    states, scales, dd = drawdown_states(r, DrawdownPolicy())
    assert (scales[10:31] == 0).all() and scales[31] == 1.0 and dd[31] == 0.0 and names(states)[31] == "normal"
