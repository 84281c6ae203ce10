"""SARIMAX's automatic order: Hannan-Rissanen criteria for the search, one exact fit of the choice."""

import warnings

import numpy as np
import pandas as pd
import pytest
from statsmodels.tsa.arima_process import ArmaProcess
from statsmodels.tsa.statespace.sarimax import SARIMAX

from python_models.forecasters.sarimax import WEEK, Sarimax, approximate_order_search


def _returns(ar: list[float], ma: list[float], n: int, seed: int) -> pd.Series:
    """A zero-mean ARMA series in daily-return units (statsmodels' lag-polynomial convention)."""
    process = ArmaProcess(np.r_[1.0, -np.asarray(ar)], np.r_[1.0, np.asarray(ma)])
    x = process.generate_sample(n, scale=0.01, distrvs=np.random.default_rng(seed).standard_normal, burnin=200)
    return pd.Series(x, index=pd.bdate_range("2010-01-01", periods=n))


@pytest.mark.parametrize(
    ("ar", "ma", "want"),
    [
        ([0.5], [], (1, 0, 0)),  # AR(1)
        ([], [0.6], (0, 0, 1)),  # MA(1)
        ([0, 0, 0, 0, 0.4], [], (0, 1, 0)),  # (p, seasonal p, q) as (0, 1, 0): a weekly AR term alone
        ([], [], (0, 0, 0)),  # white noise, under BIC
    ],
)
def test_the_approximate_search_finds_the_order_that_made_the_series(ar, ma, want):
    y = 100 * _returns(ar, ma, 1500, seed=3).to_numpy()
    best = approximate_order_search(y, max_order=2, criterion="bic")[0]
    assert (best.p, best.seasonal_p, best.q) == want


def test_the_chosen_seasonal_term_is_fitted_exactly_and_forecasts_like_statsmodels():
    r = _returns([0, 0, 0, 0, 0.4], [], 1500, seed=5)
    fit = Sarimax(order="auto", criterion="bic").fit(r)
    assert fit.seasonal_order == (1, 0, 0, WEEK) and fit.diagnostics["seasonal_p"] == 1.0
    assert abs(fit.params["ar.S.L5"] - 0.4) < 0.06
    # the forecast of the fitted seasonal model against statsmodels' own, from the same parameters
    model = SARIMAX(100 * r.to_numpy(), order=fit.order, seasonal_order=fit.seasonal_order, trend="c")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = model.filter(fit.params.to_numpy()).get_forecast(5).predicted_mean
    got = fit.forecast(r, r.index[-1:], (1, 5)).mean[0]
    np.testing.assert_allclose(got, [ref[0] / 100, ref.sum() / 100], rtol=1e-8)


@pytest.mark.parametrize("seed", range(2))
def test_the_approximate_choice_is_near_the_best_of_nine_exact_fits(seed):
    """Against the search it replaced (every order fitted by maximum likelihood, the lowest AIC):
    the order the regressions rank first is within 2 AIC points of the exact best (the usual
    margin within which two models are not told apart), on ARMA(1, 1) windows of 756 sessions."""
    r = _returns([0.3], [-0.1], 756, seed=seed)
    exact = {}
    for p in range(3):
        for q in range(3):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exact[(p, q)] = SARIMAX(100 * r.to_numpy(), order=(p, 0, q), trend="c").fit(disp=False).aic
    best = next(c for c in approximate_order_search(100 * r.to_numpy(), 2, season=0))
    assert exact[(best.p, best.q)] - min(exact.values()) < 2.0


def test_the_search_rejects_a_window_too_short_and_an_unknown_criterion():
    with pytest.raises(ValueError, match="too few"):
        approximate_order_search(np.zeros(50), 2)
    with pytest.raises(ValueError, match="criterion"):
        approximate_order_search(np.zeros(800), 2, criterion="hqic")
