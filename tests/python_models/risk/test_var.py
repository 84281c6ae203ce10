"""VaR and ES against closed forms, hand loops, numerical integration and arch's own bootstrap."""

import numpy as np
import pandas as pd
import pytest
from arch import arch_model
from numpy.testing import assert_allclose
from scipy import integrate, stats

from python_models.risk.var import (
    GarchFilter,
    cornish_fisher,
    cornish_fisher_quantile,
    cornish_fisher_tail_mean,
    cornish_fisher_valid,
    fhs_garch,
    historical,
    rolling_var_es,
)


def _garch_returns(n: int = 1500, seed: int = 5) -> np.ndarray:
    """Simple returns of a GARCH(1,1) with Student-t(6) shocks (a fat left tail to find)."""
    rng = np.random.default_rng(seed)
    omega, alpha, beta = 0.02, 0.08, 0.9  # percent²
    z = rng.standard_t(6, n) / np.sqrt(6 / 4)
    h, out = omega / (1 - alpha - beta), np.empty(n)
    for t in range(n):
        out[t] = 0.03 + np.sqrt(h) * z[t]
        h = omega + alpha * (out[t] - 0.03) ** 2 + beta * h
    return np.expm1(out / 100)


def test_historical_var_and_es_are_the_empirical_quantile_and_the_tail_mean_by_a_hand_loop():
    r = _garch_returns(400)
    for horizon in (1, 10):
        sums = np.array([np.prod(1 + r[i : i + horizon]) - 1 for i in range(r.size - horizon + 1)])
        ordered = np.sort(sums)
        position = 0.01 * (sums.size - 1)  # NumPy's linear interpolation, by hand
        lower = int(np.floor(position))
        q = ordered[lower] + (position - lower) * (ordered[lower + 1] - ordered[lower])
        got = historical(r, 0.99, horizon)
        assert got.var == pytest.approx(-q, rel=1e-12)
        assert got.es == pytest.approx(-np.mean([s for s in sums if s <= q]), rel=1e-12)
        assert got.es >= got.var > 0


def test_cornish_fisher_is_the_normal_quantile_and_es_without_skew_or_kurtosis():
    for p in (0.05, 0.01):
        z = stats.norm.ppf(p)
        assert cornish_fisher_quantile(p, 0.0, 0.0) == pytest.approx(z, rel=1e-15)
        # the normal ES: mu - sigma phi(z) / p
        assert cornish_fisher_tail_mean(p, 0.0, 0.0) == pytest.approx(-stats.norm.pdf(z) / p, rel=1e-15)


@pytest.mark.parametrize("skew, kurt", [(-0.6, 3.0), (0.3, 1.2), (-0.7, 4.0)])
def test_the_cornish_fisher_es_is_the_mean_of_its_quantile_function_over_the_tail(skew, kurt):
    numeric, _ = integrate.quad(lambda u: cornish_fisher_quantile(u, skew, kurt), 0, 0.01, limit=200)
    assert cornish_fisher_tail_mean(0.01, skew, kurt) == pytest.approx(numeric / 0.01, rel=1e-8)


def test_cornish_fisher_is_refused_where_its_quantile_function_bends_back():
    # Maillard (2012): the expansion's quantile function can bend back; what matters here is the tail
    skews, kurts = np.meshgrid(np.linspace(-2, 2, 21), np.linspace(0, 30, 31))
    valid = cornish_fisher_valid(0.01, skews.ravel(), kurts.ravel())
    assert valid.any() and not valid.all()
    assert not cornish_fisher_valid(0.01, -2.0, 0.0) and cornish_fisher_valid(0.01, 0.0, 4.0)
    for s, k in zip(skews.ravel()[valid], kurts.ravel()[valid], strict=True):
        var = -cornish_fisher_quantile(0.01, s, k)
        assert -cornish_fisher_tail_mean(0.01, s, k) >= var - 1e-12  # where it is a distribution, ES >= VaR
    r = np.tile(np.r_[np.full(9, 0.01), -0.05], 25)  # skewness -2.7, excess kurtosis 5.2: its tail bends
    assert np.isnan(cornish_fisher(r, 0.99).var) and np.isnan(cornish_fisher(r, 0.99).es)


def test_cornish_fisher_uses_the_window_moments_and_aggregates_them_over_the_horizon():
    r = _garch_returns(800)
    mu, sigma = r.mean(), r.std(ddof=1)
    s, k = stats.skew(r, bias=False), stats.kurtosis(r, bias=False)
    assert s < 0 < k  # the fat left tail it should price
    for horizon in (1, 10):
        g = cornish_fisher_quantile(0.01, s / np.sqrt(horizon), k / horizon)
        tail = cornish_fisher_tail_mean(0.01, s / np.sqrt(horizon), k / horizon)
        got = cornish_fisher(r, 0.99, horizon)
        assert got.var == pytest.approx(-(horizon * mu + np.sqrt(horizon) * sigma * g), rel=1e-12)
        assert got.es == pytest.approx(-(horizon * mu + np.sqrt(horizon) * sigma * tail), rel=1e-12)
    normal = -(mu + sigma * stats.norm.ppf(0.01))
    assert cornish_fisher(r, 0.99).var > normal  # the fat tail raises the 99 % VaR


def test_fhs_matches_arch_own_bootstrap_forecast():
    r = _garch_returns(1500)
    fitted = GarchFilter.fit(r)
    res = arch_model(100 * np.log1p(r), mean="Constant", vol="GARCH", p=1, q=1, dist="normal").fit(
        disp="off", show_warning=False
    )
    assert_allclose([fitted.mu, fitted.omega, fitted.alpha, fitted.beta], res.params.to_numpy(), rtol=1e-10)
    assert_allclose(fitted.shocks, res.std_resid, rtol=1e-10)
    forecast = res.forecast(
        horizon=10, method="bootstrap", simulations=40000, reindex=False, random_state=np.random.RandomState(0)
    )
    paths = forecast.simulations.values[-1]  # (simulations, steps), percent log returns
    for horizon in (1, 10):
        simulated = np.expm1(paths[:, :horizon].sum(axis=1) / 100)
        q = np.quantile(simulated, 0.01)
        ours = fhs_garch(r, 0.99, horizon, paths=40000, seed=1)
        assert ours.var == pytest.approx(-q, rel=0.04)
        # the tail mean of 400 paths: its Monte Carlo error is a few percent (arch's ES over seeds 0-2
        # at h = 10: 0.1117, 0.1074, 0.1110; ours: 0.1086, 0.1081, 0.1090)
        assert ours.es == pytest.approx(-simulated[simulated <= q].mean(), rel=0.05)


def test_the_rolling_estimates_equal_the_window_functions_and_see_no_later_return():
    r = pd.Series(_garch_returns(420), index=pd.bdate_range("2010-01-01", periods=420))
    out = rolling_var_es(r, window=252, refit_every=21, paths=500, seed=3).set_index(
        ["date", "method", "level", "horizon"]
    )
    assert len(out) == (420 - 252 + 1) * 3 * 2 * 2
    for end in (252, 252 + 21, 300, 420):  # refit sessions and between them
        date, past = r.index[end - 1], r.to_numpy()[end - 252 : end]
        for level in (0.95, 0.99):
            for horizon in (1, 10):
                row = out.loc[(date, "historical", level, horizon)]
                assert row["var"] == pytest.approx(historical(past, level, horizon).var, rel=1e-12)
                assert row["es"] == pytest.approx(historical(past, level, horizon).es, rel=1e-12)
                row = out.loc[(date, "cornish_fisher", level, horizon)]
                assert row["var"] == pytest.approx(cornish_fisher(past, level, horizon).var, rel=1e-9)
                assert row["es"] == pytest.approx(cornish_fisher(past, level, horizon).es, rel=1e-9)
                if (end - 252) % 21 == 0:  # at a refit the GARCH is the window's own
                    row = out.loc[(date, "fhs_garch", level, horizon)]
                    assert row["var"] == pytest.approx(
                        fhs_garch(past, level, horizon, paths=500, seed=3 + end).var, rel=1e-9
                    )
    # point in time: every estimate up to a date is unchanged when the returns after it change
    cut = r.index[330]
    shocked = r.copy()
    shocked[shocked.index > cut] = -0.2
    again = rolling_var_es(shocked, window=252, refit_every=21, paths=500, seed=3).set_index(out.index.names)
    before = out.index.get_level_values("date") <= cut
    assert_allclose(again.loc[before].to_numpy(), out.loc[before].to_numpy(), rtol=0, atol=0)
    assert not np.allclose(again.loc[~before, "var"].to_numpy(), out.loc[~before, "var"].to_numpy())


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: historical(np.zeros(100), 0.3), "level must lie"),
        (lambda: historical(np.zeros(100), 0.99, 0), "horizon must be at least"),
        (lambda: historical(np.r_[np.zeros(99), np.nan], 0.99), "NaN or infinite"),
        (lambda: cornish_fisher(np.r_[np.zeros(99), -1.0], 0.99), "-100 %"),
        (lambda: fhs_garch(np.zeros(50), 0.99), "too few"),
        (lambda: rolling_var_es(np.zeros(300)), "pandas Series"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
