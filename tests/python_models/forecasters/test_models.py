"""Forecasters against direct fits of arch and statsmodels, and closed forms."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch import arch_model
from numpy.testing import assert_allclose
from statsmodels.tsa.statespace.sarimax import SARIMAX

from python_models.forecasters.base import ReturnForecast, validate_returns
from python_models.forecasters.garch import Garch
from python_models.forecasters.random_walk import RandomWalk
from python_models.forecasters.sarimax import Sarimax

HORIZONS = (1, 5, 21, 63)


def test_garch_matches_direct_arch_fit_and_forecast(returns):
    train = returns.iloc[:800]
    fit = Garch().fit(train)
    direct = arch_model(100 * train, mean="Constant", vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
    assert_allclose(fit.params.to_numpy(), direct.params.to_numpy(), rtol=1e-6)
    assert_allclose(fit.diagnostics["aic"], direct.aic, rtol=1e-9)
    # Forecast from the last training session equals arch's own forecast.
    fc = fit.forecast(train, train.index[[-1]], HORIZONS)
    own = direct.forecast(horizon=63, reindex=False)
    assert_allclose(fc.mean[0], np.cumsum(own.mean.to_numpy()[-1])[np.array(HORIZONS) - 1] / 100, rtol=1e-8)
    assert_allclose(fc.variance[0], np.cumsum(own.variance.to_numpy()[-1])[np.array(HORIZONS) - 1] / 1e4, rtol=1e-8)


def test_garch_forecast_ignores_data_after_origin(returns):
    fit = Garch().fit(returns.iloc[:800])
    origin = returns.index[[850]]
    a = fit.forecast(returns.iloc[:900], origin, HORIZONS)
    shocked = returns.copy()
    shocked.iloc[851:] *= 5.0
    b = fit.forecast(shocked, origin, HORIZONS)
    assert_allclose(a.mean, b.mean)
    assert_allclose(a.variance, b.variance)


def test_sarimax_mean_matches_statsmodels_get_forecast(returns):
    train = returns.iloc[:800]
    fit = Sarimax().fit(train)
    direct = SARIMAX(100 * train.to_numpy(), order=(1, 0, 1), trend="c").fit(disp=False)
    assert_allclose(fit.params.to_numpy(), direct.params, rtol=1e-4)
    for origin in (820, 900):
        fc = fit.forecast(returns, returns.index[[origin]], HORIZONS)
        ref = (
            SARIMAX(100 * returns.iloc[: origin + 1].to_numpy(), order=(1, 0, 1), trend="c")
            .filter(fit.params.to_numpy())
            .get_forecast(63)
        )
        assert_allclose(fc.mean[0], np.cumsum(ref.predicted_mean)[np.array(HORIZONS) - 1] / 100, rtol=1e-9)
        # The one-step variance is statsmodels' forecast variance.
        assert_allclose(fc.variance[0, 0], ref.var_pred_mean[0] / 1e4, rtol=1e-6)


def test_sarimax_cumulative_variance_matches_psi_weight_closed_form(returns):
    fit = Sarimax().fit(returns.iloc[:800])
    fc = fit.forecast(returns, returns.index[[900]], HORIZONS)
    phi, theta, sigma2 = fit.params["ar.L1"], fit.params["ma.L1"], fit.params["sigma2"] / 1e4
    psi = np.r_[1.0, (phi + theta) * phi ** np.arange(62)]
    closed = sigma2 * np.cumsum(np.cumsum(psi) ** 2)
    assert_allclose(fc.variance[0], closed[np.array(HORIZONS) - 1], rtol=1e-6)


def test_random_walk_closed_form(returns):
    fit = RandomWalk().fit(returns.iloc[:500])
    fc = fit.forecast(returns, returns.index[[600, 601]], HORIZONS)
    r = returns.iloc[:500]
    assert_allclose(fc.mean[1], r.mean() * np.array(HORIZONS))
    assert_allclose(fc.variance[0], r.var(ddof=1) * np.array(HORIZONS))
    assert_allclose(RandomWalk(drift=False).fit(r).forecast(returns, returns.index[[600]], [5]).mean, 0.0)


def test_lognormal_conversion_matches_monte_carlo():
    fc = ReturnForecast(pd.Index([pd.Timestamp("2020-01-02")]), (5,), np.array([[0.01]]), np.array([[0.0025]]))
    row = fc.to_frame().iloc[0]
    draws = np.expm1(np.random.default_rng(1).normal(0.01, 0.05, 2_000_000))
    assert_allclose(row["y_pred"], draws.mean(), atol=1e-4)
    assert_allclose(row["y_std"], draws.std(), rtol=2e-3)
    assert_allclose([row["y_lower"], row["y_upper"]], np.quantile(draws, [0.05, 0.95]), atol=1e-3)
    assert_allclose(row["confidence"], (draws > 0).mean(), atol=1e-3)


@pytest.mark.parametrize(
    "bad, message",
    [
        (pd.Series([0.01, np.nan] * 50, index=pd.bdate_range("2020-01-01", periods=100)), "NaN"),
        (pd.Series([0.01] * 100, index=pd.bdate_range("2020-01-01", periods=100)[::-1]), "increasing"),
        (pd.Series([0.01] * 10, index=pd.bdate_range("2020-01-01", periods=10)), "at least"),
        ([0.01] * 100, "pandas Series"),
    ],
)
def test_bad_returns_are_rejected_with_a_clear_message(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        validate_returns(bad)
    with pytest.raises((ValueError, TypeError), match=message):
        Garch().fit(bad)


def test_forecast_rejects_unknown_origins(returns):
    fit = RandomWalk().fit(returns.iloc[:200])
    with pytest.raises(ValueError, match="not found"):
        fit.forecast(returns, pd.Index([pd.Timestamp("1999-01-01")]), [1])


def test_garch_volatility_forecast_is_arch_variance_path(returns):
    train = returns.iloc[:800]
    fit = Garch().fit(train)
    direct = arch_model(100 * train, mean="Constant", vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
    expected = np.sqrt(direct.forecast(horizon=10, reindex=False).variance.to_numpy()[-1]) / 100
    assert_allclose(fit.volatility_forecast(train, 10), expected, rtol=1e-8)


def test_garch_constraints_carry_their_exact_gradients_and_only_inside_the_fit():
    import arch.univariate.base as arch_base
    from scipy.optimize import approx_fprime

    from python_models.forecasters.garch import exact_constraint_gradients, linear_constraints

    a = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, -1.0, -1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    b = np.array([0.0, -1.0, 2.05])
    x = np.array([0.05, 0.1, 0.85, 7.0])
    ours, arch_own = linear_constraints(a, b), arch_base.constraint(a, b)
    for mine, theirs in zip(ours, arch_own, strict=True):
        assert mine["fun"](x) == theirs["fun"](x)
        assert_allclose(mine["jac"](x), approx_fprime(x, theirs["fun"], 1e-7), atol=1e-6)
    own = arch_base.constraint
    with exact_constraint_gradients():
        assert arch_base.constraint is linear_constraints
    assert arch_base.constraint is own  # arch's own fits elsewhere in the process are untouched


def test_a_fit_the_exact_gradients_do_not_converge_is_refitted_with_arch_own_constraints(returns, monkeypatch):
    import python_models.forecasters.garch as garch

    def incompatible(a, b):  # constraints SLSQP cannot meet: the fast fit stops unconverged
        return [{"type": "ineq", "fun": lambda params, *args: -1.0, "jac": lambda params, *args: 0 * params}]

    monkeypatch.setattr(garch, "linear_constraints", incompatible)
    train = returns.iloc[:756]
    fit = Garch(vol="GJR").fit(train)
    direct = arch_model(100 * train, mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="t").fit(disp="off")
    assert fit.diagnostics["converged"] == 1.0
    assert_allclose(fit.params.to_numpy(), direct.params.to_numpy(), rtol=0, atol=0)


def test_gjr_on_the_window_where_the_fast_fit_ran_off_is_sane():
    # a 756-session window of the 500-ticker synthetic universe (bench_scale.py, seed 7, T0169 to
    # 2011-04-01) on which the exact-gradient fit stopped at a mean of -2,085 % a day with one BLAS
    # thread, as the walk-forward runs, and its forecasts overflowed
    from threadpoolctl import threadpool_limits

    path = Path(__file__).resolve().parents[2] / "fixtures" / "models" / "gjr_slsqp_incompatible_window.csv"
    window = pd.read_csv(path, index_col="date", parse_dates=["date"])["log_return"]
    with threadpool_limits(limits=1):
        fit = Garch(vol="GJR").fit(window)
        direct = arch_model(100 * window, mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="t").fit(disp="off")
    assert fit.diagnostics["converged"] == 1.0
    assert abs(fit.params["mu"]) < 1 and fit.diagnostics["loglik"] > direct.loglikelihood - 1e-2
    forecast = fit.forecast(window, window.index[-5:], [1, 63])
    assert np.all(np.isfinite(forecast.mean)) and np.all(np.abs(forecast.mean) < 0.5)


def test_garch_and_gjr_reach_arch_own_maximum_on_rolling_windows(returns):
    # the exact gradients change the optimiser's path, not the problem: the same likelihood maximum
    for vol, o in (("GARCH", 0), ("GJR", 1)):
        for start in range(0, 700, 100):
            train = returns.iloc[start : start + 756]
            fit = Garch(vol=vol).fit(train)
            direct = arch_model(100 * train, mean="Constant", vol="GARCH", p=1, o=o, q=1, dist="t").fit(disp="off")
            assert abs(fit.diagnostics["loglik"] - direct.loglikelihood) < 1e-4
            assert_allclose(fit.params.to_numpy(), direct.params.to_numpy(), rtol=0.02, atol=1e-4)


@pytest.mark.parametrize(("vol", "o", "q"), [("GARCH", 0, 1), ("GJR", 1, 1), ("GARCH", 0, 0)])
def test_garch_multi_step_variances_equal_arch_own_forecast(returns, vol, o, q):
    # GARCH(1,1)/GJR use pmx's vectorised recursion; ARCH(1) (q = 0) arch's own path
    fit = Garch(vol=vol, q=q).fit(returns.iloc[:800])
    history = returns.iloc[:863]
    origins = history.index[800:]
    ours = fit.forecast(history, origins, HORIZONS)
    own = fit._model(history).forecast(
        params=fit.params.to_numpy(), start=origins[0], horizon=63, reindex=False, method="analytic"
    )
    idx = np.array(HORIZONS) - 1
    assert_allclose(ours.variance, np.cumsum(own.variance.to_numpy(), axis=1)[:, idx] / 1e4, rtol=1e-14)
    assert_allclose(ours.mean, np.cumsum(own.mean.to_numpy(), axis=1)[:, idx] / 100, rtol=1e-14)
