"""The compiled Baum-Welch against hmmlearn's GaussianHMM: the same start, steps and estimates."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from hmmlearn.hmm import GaussianHMM

from python_models.forecasters.hmm import GaussianHmm, regime_features
from python_models.forecasters.hmm_em import HmmEmFailure, fit_gaussian_hmm, initial_parameters


def _features(seed: int, n: int = 756) -> np.ndarray:
    """Standardised (return, log volatility) of a two-regime series: calm, then turbulent stretches."""
    rng = np.random.default_rng(seed)
    vol = np.where((np.arange(n) // 120) % 2 == 0, 0.008, 0.025)
    returns = pd.Series(rng.standard_t(4, n) * vol, index=pd.bdate_range("2015-01-01", periods=n))
    x = regime_features(returns).dropna().to_numpy()
    return (x - x.mean(axis=0)) / x.std(axis=0)


def _hmmlearn(x: np.ndarray, states: int, seed: int) -> GaussianHMM:
    model = GaussianHMM(states, "full", n_iter=100, random_state=seed, tol=1e-4, implementation="scaling")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("hmmlearn").disabled = True
        try:
            model.fit(x)
        finally:
            logging.getLogger("hmmlearn").disabled = False
    return model


@pytest.mark.parametrize("states", [2, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_estimates_are_hmmlearns(states, seed):
    x = _features(seed)
    want = _hmmlearn(x, states, seed)
    got = fit_gaussian_hmm(x, states, seed)
    assert got.iterations == want.monitor_.iter
    np.testing.assert_allclose(got.history, want.monitor_.history, rtol=1e-12)
    np.testing.assert_allclose(got.means, want.means_, atol=1e-9)
    np.testing.assert_allclose(got.covars, want.covars_, atol=1e-9)
    np.testing.assert_allclose(got.transmat, want.transmat_, atol=1e-9)
    np.testing.assert_allclose(got.startprob, want.startprob_, atol=1e-9)
    assert got.loglike == pytest.approx(want.score(x), abs=1e-7)


def test_the_start_is_hmmlearns():
    x = _features(5)
    model = GaussianHMM(4, "full", random_state=7)
    model._init(x)  # hmmlearn's own initialisation, which fit() calls first
    startprob, transmat, means, covars = initial_parameters(x, 4, 7)
    np.testing.assert_array_equal(startprob, model.startprob_)
    np.testing.assert_array_equal(transmat, model.transmat_)
    np.testing.assert_allclose(means, model.means_, rtol=0, atol=1e-14)  # k-means: the same steps, to rounding
    np.testing.assert_array_equal(covars, model.covars_)


@pytest.mark.parametrize("k, seed", [(2, 0), (3, 5), (4, 11)])
def test_the_kmeans_start_is_scikit_learns(k, seed):
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    from python_models.forecasters.hmm_em import kmeans_centres

    rng = np.random.default_rng(seed)
    for x in (_features(seed), rng.standard_normal((400, 3)), rng.standard_t(3, (600, 2))):
        with threadpool_limits(1, user_api="openmp"):
            want = KMeans(k, random_state=seed, n_init=10).fit(x).cluster_centers_
        np.testing.assert_allclose(kmeans_centres(x, k, seed), want, rtol=0, atol=1e-13)


def test_a_session_no_state_explains_stops_the_scaled_recursion_where_hmmlearns_does():
    from hmmlearn import _hmmc

    from python_models.forecasters.hmm_em import _forward

    frame = np.random.default_rng(0).uniform(0.1, 1.0, (50, 3))
    frame[20] = 1e-320  # underflows in every state
    start, trans = np.full(3, 1 / 3), np.full((3, 3), 1 / 3)
    with pytest.raises(ValueError, match="underflow"):
        _hmmc.forward_scaling(start, trans, frame)
    assert _forward(start, trans, frame, np.empty_like(frame), np.empty(50))[1] is False


def test_a_failed_compiled_fit_falls_back_to_hmmlearn_in_logs(monkeypatch):
    import python_models.forecasters.hmm as hmm

    def failing(*args, **kwargs):
        raise HmmEmFailure("the scaled forward pass underflowed")

    monkeypatch.setattr(hmm, "fit_gaussian_hmm", failing)
    returns = pd.Series(np.random.default_rng(4).normal(0, 0.01, 600), index=pd.bdate_range("2018-01-01", periods=600))
    fit = GaussianHmm().fit(returns)
    x = regime_features(returns).dropna().to_numpy()
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    want = GaussianHMM(4, "full", n_iter=100, random_state=0, tol=1e-4, implementation="log").fit(x)
    order = np.argsort(want.means_[:, 1])
    np.testing.assert_allclose(fit.means, want.means_[order], atol=1e-12)
    assert fit.diagnostics["loglik"] == pytest.approx(want.score(x))


def test_the_forward_filter_is_hmmlearns_scaled_forward_pass():
    from hmmlearn import _hmmc

    from python_models.forecasters.hmm_em import forward_filter

    rng = np.random.default_rng(2)
    frame = rng.uniform(0.01, 1.0, (300, 4))
    start = rng.dirichlet(np.ones(4))
    trans = rng.dirichlet(np.ones(4), size=4)
    _, want, _ = _hmmc.forward_scaling(start, trans, frame)  # each session's row scaled to sum to one
    np.testing.assert_allclose(forward_filter(start, trans, frame), want, rtol=1e-12)
