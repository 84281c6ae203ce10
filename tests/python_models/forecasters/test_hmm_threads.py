"""Where the HMM falls back to hmmlearn, scikit-learn's k-means start runs on one OpenMP thread whatever
the caller allowed: its reductions differ in the last bits with the thread count, and a fit in the run's
process must equal the same fit in a one-thread Dask worker (tests/e2e/test_ticker_batches.py). The
compiled start (hmm_em.kmeans_centres) is sequential: scikit-learn's one-thread steps."""

import numpy as np
import pandas as pd
import sklearn.cluster
from threadpoolctl import threadpool_info, threadpool_limits

from python_models.forecasters.hmm import GaussianHmm


def test_the_fit_runs_on_one_openmp_thread_under_a_caller_that_allows_two(monkeypatch):
    import python_models.forecasters.hmm as hmm
    from python_models.forecasters.hmm_em import HmmEmFailure

    def failing(*args, **kwargs):  # scikit-learn's k-means runs in the fallback to hmmlearn
        raise HmmEmFailure("the scaled forward pass underflowed")

    monkeypatch.setattr(hmm, "fit_gaussian_hmm", failing)
    seen = []
    fit = sklearn.cluster.KMeans.fit

    def recording(self, *args, **kwargs):
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"})
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(sklearn.cluster.KMeans, "fit", recording)
    returns = pd.Series(np.random.default_rng(3).normal(0, 0.01, 400), index=pd.bdate_range("2020-01-01", periods=400))
    with threadpool_limits(limits=2, user_api="openmp"):  # scikit-learn's runtime is loaded by now
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"} == {2}
        GaussianHmm().fit(returns)
    assert seen and all(threads == {1} for threads in seen)
