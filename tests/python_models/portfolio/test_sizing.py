"""Multi-asset Kelly, confidence scaling and risk parity against closed forms and a general solver."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import optimize

from python_models.portfolio.sizing import (
    confidence_scale,
    kelly_book,
    kelly_portfolio,
    kelly_weights,
    risk_parity_weights,
)


def _cov(seed=0, n=4):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.02, (n, n))
    return a @ a.T + np.diag(np.full(n, 1e-4))


def test_unconstrained_kelly_is_fraction_times_inverse_covariance_times_mu():
    cov = _cov()
    mu = np.array([0.001, -0.0005, 0.0008, 0.0002])
    w = kelly_portfolio(mu, cov, fraction=0.5, cap=100.0, max_gross=1000.0, long_only=False)
    assert_allclose(w, 0.5 * np.linalg.solve(cov, mu), rtol=1e-6, atol=1e-9)


def test_constrained_kelly_matches_a_general_solver_and_respects_the_caps():
    cov = _cov(1)
    mu = np.array([0.004, 0.003, -0.002, 0.005])
    w = kelly_portfolio(mu, cov, fraction=0.5, cap=0.4, max_gross=1.0)
    obj = lambda v: -(mu @ v - v @ cov @ v / (2 * 0.5))  # noqa: E731
    ref = optimize.minimize(
        obj,
        np.full(4, 0.1),
        bounds=[(0, 0.4)] * 4,
        constraints={"type": "ineq", "fun": lambda v: 1 - v.sum()},
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    ).x
    assert_allclose(w, ref, atol=1e-5)
    assert w.min() >= -1e-9 and w.max() <= 0.4 + 1e-9 and w.sum() <= 1 + 1e-9
    assert w[2] == pytest.approx(0.0, abs=1e-7)  # negative expected return: no position when long-only


def test_with_a_diagonal_covariance_the_multi_asset_kelly_is_the_per_asset_one():
    sd = np.array([0.05, 0.08, 0.1])
    mu = np.array([0.0004, 0.0008, 0.002])
    w = kelly_portfolio(mu, np.diag(sd**2), fraction=0.5, cap=0.15, max_gross=1.0)
    per_asset = kelly_weights(pd.DataFrame([mu]), pd.DataFrame([sd]), 0.5, 0.15, 1.0).iloc[0].to_numpy()
    assert_allclose(w, per_asset, atol=1e-7)


def test_confidence_scale_is_the_even_money_kelly_fraction_above_the_floor():
    assert_allclose(confidence_scale([0.5, 0.54, 0.55, 0.75, 1.0]), [0.0, 0.0, 0.1, 0.5, 1.0])
    assert confidence_scale(0.8) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        confidence_scale(0.6, min_confidence=0.4)


def test_risk_parity_equalises_risk_contributions():
    cov = _cov(2, n=5)
    w = risk_parity_weights(cov)
    contrib = w * (cov @ w)
    assert_allclose(contrib / contrib.sum(), 0.2, atol=1e-6)
    assert w.sum() == pytest.approx(1.0) and (w > 0).all()
    sd = np.array([0.1, 0.2, 0.4])
    assert_allclose(risk_parity_weights(np.diag(sd**2)), (1 / sd) / (1 / sd).sum(), atol=1e-7)  # inverse volatility
    b = np.array([0.5, 0.3, 0.2])
    wb = risk_parity_weights(np.diag(sd**2), budgets=b)
    cb = wb * (np.diag(sd**2) @ wb)
    assert_allclose(cb / cb.sum(), b, atol=1e-6)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="positive semi-definite"):
        kelly_portfolio([0.1, 0.1], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="2 x 2"):
        kelly_portfolio([0.1, 0.1], np.eye(3))
    with pytest.raises(ValueError, match="budgets"):
        risk_parity_weights(np.eye(2), budgets=[1.0, -1.0])


def test_kelly_book_sizes_each_strategy_as_if_alone():
    """Strategies sized together (the refresh's every-model book) get the rows and weights each gets alone,
    to the bit, also where one strategy lacks tickers the others have (its dates sum its own tickers)."""
    rng = np.random.default_rng(7)
    dates = pd.bdate_range("2024-01-02", periods=6)
    rows = [
        (s, t, d, rng.normal(0.01, 0.03), rng.uniform(0.02, 0.2))
        for s in ("a", "b", "c")
        for t in [f"T{i:02d}" for i in range(12)]
        for d in dates
        if not (s == "b" and t in ("T00", "T05"))  # b never forecasts two tickers
    ]
    signals = pd.DataFrame(rows, columns=["strategy", "ticker", "date", "expected_return", "forecast_std"])
    signals = signals.drop(signals.sample(frac=0.2, random_state=1).index)  # holes on some dates
    together = kelly_book(signals, cap=0.2)
    alone = pd.concat(
        [kelly_book(signals[signals["strategy"] == s], cap=0.2) for s in ("a", "b", "c")], ignore_index=True
    )
    pd.testing.assert_frame_equal(together, alone, check_exact=True)
    assert not together.query("strategy == 'b'")["ticker"].isin(["T00", "T05"]).any()
