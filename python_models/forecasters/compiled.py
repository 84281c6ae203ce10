"""Compile the numba kernels once, ahead of a run: ``python -m python_models.forecasters.compiled``.

The kernels (arma_likelihood.py, hmm_em.py) compile on first use, ~20 s in all, and numba caches
them beside their modules (``cache=True``), where every later process and Dask worker of this
checkout loads them in well under a second. ``make setup`` runs this after the install, so the
first ``make run`` of a fresh clone does not pay the compilation in each worker. It fits the
default models that use them on a small seeded series, through the code paths a run takes (so
the same argument types, the same compiled versions).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd


def warm_up() -> float:
    """Fit and forecast once with each compiled path; the seconds it took."""
    from python_models.forecasters.hmm import GaussianHmm
    from python_models.forecasters.sarimax import Sarimax

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2020-01-01", periods=400)
    returns = pd.Series(rng.standard_t(4, len(dates)) * 0.01, index=dates)
    features = pd.DataFrame({"f": rng.standard_normal(len(dates))}, index=dates)
    origins = dates[-5:]
    for model, exog in ((Sarimax(order="auto"), None), (Sarimax(exog_names=("f",)), features)):
        fit = model.fit(returns.iloc[:300], exog=exog)
        fit.forecast(returns, origins, (1, 5), exog=exog)
    GaussianHmm().fit(returns.iloc[:300]).forecast(returns, origins, (1, 5))
    return time.perf_counter() - started


if __name__ == "__main__":
    print(f"pmx: numba kernels compiled and cached in {warm_up():.1f} s")
