"""The ES limit: each decision's positions revalued on the window's returns, scaled down to the cap."""

import numpy as np
import pandas as pd
import pytest

from python_models.portfolio.risk_limits import EsLimit, apply_es_limit, es_scale, position_es


def _market(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-01", periods=n)
    calm = rng.normal(0.0003, 0.01, (n, 3))
    calm[250:260] -= 0.04  # a crash (every stock down 4 % a day for two weeks) inside the later windows
    bond = rng.normal(0.0001, 0.002, n)
    return pd.DataFrame(np.column_stack([calm, bond]), index=dates, columns=["A", "B", "C", "BOND"])


def _hand_es(pnl: np.ndarray, level: float) -> float:
    ordered = np.sort(pnl)
    position = (1 - level) * (len(pnl) - 1)
    lower = int(np.floor(position))
    q = ordered[lower] + (position - lower) * (ordered[lower + 1] - ordered[lower])
    return -float(np.mean([x for x in pnl if x <= q]))


def test_position_es_is_the_tail_mean_of_the_scenarios_by_a_hand_loop():
    pnl = np.random.default_rng(1).standard_t(4, (252, 2)) * 0.01
    got = position_es(pnl, 0.975)
    assert got == pytest.approx([_hand_es(pnl[:, 0], 0.975), _hand_es(pnl[:, 1], 0.975)], rel=1e-12)


def test_the_scale_is_the_largest_that_keeps_the_es_within_the_limit():
    rng = np.random.default_rng(2)
    risky, safe = rng.normal(0, 0.02, 252), rng.normal(0, 0.001, 252)
    scale, after = es_scale(risky, safe, 0.975, 0.02)
    assert 0 < scale < 1 and after <= 0.02
    assert _hand_es(scale * risky + safe, 0.975) == pytest.approx(after, rel=1e-12)
    assert _hand_es(min(scale + 1e-6, 1.0) * risky + safe, 0.975) > 0.02 - 1e-9  # nothing more fits
    assert es_scale(risky, safe, 0.975, 1.0) == (1.0, pytest.approx(_hand_es(risky + safe, 0.975)))
    # the safe part alone above the limit: every risky position goes
    assert es_scale(risky, 20 * risky, 0.975, 0.02)[0] == 0.0


def test_decisions_above_the_limit_are_scaled_and_the_others_left_whole():
    market = _market()
    decided = market.index[[100, 255, 300, 399]]
    weights = pd.DataFrame({"A": 0.5, "B": 0.4, "C": 0.3, "BOND": 0.2}, index=decided)
    policy = EsLimit(limit=0.03, level=0.975, window=252)
    scaled, rows = apply_es_limit(weights, market, policy, safe=["BOND"])
    rows = rows.set_index("date")
    assert np.isnan(rows.loc[decided[0], "es_before"]) and rows.loc[decided[0], "scale"] == 1.0  # a short history
    for date in decided[1:]:  # windows holding the crash: above the limit
        window = market.loc[:date].tail(252)
        before = _hand_es(window.to_numpy() @ weights.loc[date].to_numpy(), 0.975)
        assert rows.loc[date, "es_before"] == pytest.approx(before, rel=1e-12)
        assert before > 0.03 and rows.loc[date, "scale"] < 1
        after = _hand_es(window.to_numpy() @ scaled.loc[date].to_numpy(), 0.975)
        assert after == pytest.approx(rows.loc[date, "es_after"], rel=1e-12) and after <= 0.03
        assert scaled.loc[date, "BOND"] == 0.2  # the safe sleeve is kept
        assert scaled.loc[date, ["A", "B", "C"]].to_numpy() == pytest.approx(
            weights.loc[date, ["A", "B", "C"]].to_numpy() * rows.loc[date, "scale"]
        )
    loose, _ = apply_es_limit(weights, market, EsLimit(limit=0.5), safe=["BOND"])
    pd.testing.assert_frame_equal(loose, weights)
    off, none = apply_es_limit(weights, market, EsLimit(limit=0.0), safe=["BOND"])
    pd.testing.assert_frame_equal(off, weights)
    assert none.empty


def test_a_decision_reads_no_return_after_its_close():
    market = _market()
    decided = market.index[[300]]
    weights = pd.DataFrame({"A": 0.5, "B": 0.4, "C": 0.3, "BOND": 0.2}, index=decided)
    policy = EsLimit(limit=0.03)
    _, rows = apply_es_limit(weights, market, policy, safe=["BOND"])
    shocked = market.copy()
    shocked.loc[shocked.index > decided[0]] = -0.3
    _, again = apply_es_limit(weights, shocked, policy, safe=["BOND"])
    pd.testing.assert_frame_equal(rows, again)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="limit >= 0"):
        EsLimit(limit=-0.01)
    with pytest.raises(ValueError, match="level < 1"):
        EsLimit(level=1.2)


def test_stored_scales_extend_the_path_as_a_rebuild_would():
    market = _market()
    decided = market.index[[255, 300, 399]]
    weights = pd.DataFrame({"A": 0.5, "B": 0.4, "C": 0.3, "BOND": 0.2}, index=decided)
    policy = EsLimit(limit=0.03)
    whole, rows = apply_es_limit(weights, market, policy, safe=["BOND"])
    first = rows.set_index("date")["scale"].iloc[:2]
    resumed, new = apply_es_limit(weights, market, policy, safe=["BOND"], stored=first)
    pd.testing.assert_frame_equal(resumed, whole)
    pd.testing.assert_frame_equal(new.reset_index(drop=True), rows.iloc[2:].reset_index(drop=True))


def test_the_gate_finds_a_planted_breach_and_nothing_else():
    from python_models.portfolio.books import allocation_rows
    from python_models.portfolio.risk_limits import es_limit_breaches

    market = _market()
    decided = market.index[[255, 300, 399]]
    weights = pd.DataFrame({"A": 0.3, "B": 0.3, "C": 0.3, "BOND": 0.1}, index=decided)
    policy = EsLimit(limit=0.03)
    scaled, rows = apply_es_limit(weights, market, policy, safe=["BOND"])
    stored = allocation_rows("barbell", scaled)
    decisions = rows.assign(strategy="barbell")
    assert es_limit_breaches(stored, market, decisions, policy).empty
    planted = stored.copy()
    planted.loc[(planted["date"] == decided[1]) & (planted["ticker"] == "A"), "weight"] = 0.9  # the gate bypassed
    breaches = es_limit_breaches(planted, market, decisions, policy)
    assert breaches["date"].tolist() == [decided[1]] and breaches["es"].iloc[0] > 0.03
