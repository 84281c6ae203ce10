"""The compiled ARMA likelihood against statsmodels' SARIMAX: the same likelihood, the same estimates."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from statsmodels.tsa.arima_process import arma_generate_sample
from statsmodels.tsa.statespace.sarimax import SARIMAX

from python_models.forecasters.arma_likelihood import ArmaLikelihood, ArmaShape, maximum_likelihood

SPECS = [
    {"order": (1, 0, 1)},
    {"order": (2, 0, 2)},
    {"order": (0, 0, 0)},
    {"order": (2, 0, 1), "seasonal_order": (1, 0, 0, 5)},
    {"order": (1, 0, 1), "exog": 2},
]


def _series(seed: int, n: int = 756) -> np.ndarray:
    """ARMA(1, 1) with a mean, fat tails left out: a well-identified likelihood."""
    rng = np.random.default_rng(seed)
    return 0.05 + arma_generate_sample([1, -0.5], [1, 0.3], n, scale=1.3, distrvs=rng.standard_normal)


def _model(y: np.ndarray, spec: dict, seed: int = 0) -> SARIMAX:
    spec = dict(spec)
    k_exog = spec.pop("exog", 0)
    exog = np.random.default_rng(seed).standard_normal((len(y), k_exog)) if k_exog else None
    return SARIMAX(y, exog=exog, trend="c", **spec)


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_the_loglikelihood_is_statsmodels_own(spec):
    rng = np.random.default_rng(3)
    for seed in range(3):
        model = _model(_series(seed), spec, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = model.start_params
        likelihood = ArmaLikelihood(model)
        for params in (
            start,
            model.transform_params(model.untransform_params(start) + 0.3 * rng.standard_normal(len(start))),
        ):
            assert likelihood.loglike(params) == pytest.approx(model.loglike(params), abs=1e-9, rel=1e-10)
            filtered = model.filter(params, cov_type="none")
            np.testing.assert_allclose(likelihood.resid(params), filtered.resid, atol=1e-9)


@pytest.mark.parametrize("spec", [s for s in SPECS if s["order"] != (2, 0, 2)], ids=str)
def test_the_estimates_are_statsmodels_fit(spec):
    """Where the likelihood has one clear maximum. ARMA(2, 2) on ARMA(1, 1) data has a common
    factor: there the two can stop at the same likelihood (to 1e-9) with a different flag (seed 2:
    statsmodels' line search reports convergence, this one an abnormal end of its line search)."""
    for seed in range(3):
        model = _model(_series(seed), spec, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = model.fit(disp=False, cov_type="none")
        got = maximum_likelihood(_model(_series(seed), spec, seed))
        assert got.converged == want.mle_retvals["converged"]
        # the same optimiser on the same function up to ~1e-12: within its own tolerance
        np.testing.assert_allclose(got.params, want.params, atol=2e-4)
        assert got.loglike == pytest.approx(want.llf, abs=1e-6)
        assert got.aic == pytest.approx(want.aic, abs=1e-6)
        assert got.bic == pytest.approx(want.bic, abs=1e-6)
        np.testing.assert_allclose(got.resid, want.resid, atol=1e-3)


def test_a_unit_root_has_no_likelihood():
    from python_models.forecasters.arma_likelihood import arma_filter

    loglike = arma_filter(np.zeros(50), np.array([1.0]), np.array([]), 0.0, 1.0)[0]
    assert loglike == -np.inf


@pytest.mark.parametrize(
    "kwargs",
    [
        {"order": (1, 1, 0)},
        {"order": (1, 0, 0), "seasonal_order": (0, 0, 1, 5)},
        {"order": (1, 0, 0), "measurement_error": True},
        {"order": (1, 0, 1), "enforce_stationarity": False},
    ],
)
def test_models_it_does_not_cover_are_refused(kwargs):
    with pytest.raises(ValueError, match="covers SARIMAX"):
        ArmaLikelihood(SARIMAX(_series(0), trend="c", **kwargs))


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_the_predicted_states_are_statsmodels_with_missing_sessions(spec):
    y = _series(4)
    y[[100, 101, 400]] = np.nan  # missing: no update, as statsmodels filters them
    model = _model(y, spec, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = model.start_params
    want = model.filter(params, cov_type="none").filter_results
    shape = ArmaShape.of(model)
    loglike, _, states, covariances = shape.filter(params, y, None if model.exog is None else model.exog, True)
    assert loglike == pytest.approx(want.llf, rel=1e-10)
    np.testing.assert_allclose(states, want.predicted_state.T, atol=1e-9)
    np.testing.assert_allclose(covariances, want.predicted_state_cov.transpose(2, 0, 1), atol=1e-9)
    transition, design, intercept, rqr = shape.system(params)
    ssm = model.ssm
    np.testing.assert_allclose(
        transition, ssm["transition"][..., 0] if ssm["transition"].ndim == 3 else ssm["transition"]
    )
    np.testing.assert_allclose(design, ssm["design"][0, :, 0] if ssm["design"].ndim == 3 else ssm["design"][0])
    np.testing.assert_allclose(
        intercept, ssm["state_intercept"][:, 0] if ssm["state_intercept"].ndim == 2 else ssm["state_intercept"]
    )
    selection = ssm["selection"][..., 0] if ssm["selection"].ndim == 3 else ssm["selection"]
    np.testing.assert_allclose(
        rqr,
        selection @ ssm["state_cov"][..., 0] @ selection.T
        if ssm["state_cov"].ndim == 3
        else selection @ ssm["state_cov"] @ selection.T,
    )
