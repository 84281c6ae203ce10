"""Fits pickled under the flat ``python_models`` layout (before 0.2) still load from the fit store."""

import pickle

import numpy as np
import pandas as pd

from dagster_pmx.defs.forecasting.fits import RENAMED_MODULES, load_fit
from python_models.forecasters.random_walk import RandomWalk


def test_a_fit_pickled_under_the_old_module_path_loads_and_forecasts_the_same():
    returns = pd.Series(np.random.default_rng(0).normal(0.0005, 0.01, 300))
    fit = RandomWalk().fit(returns)
    blob = pickle.dumps(fit, protocol=0)  # text protocol: module paths are plain lines
    old = blob.replace(b"python_models.forecasters.random_walk", b"python_models.random_walk")
    assert old != blob
    restored = load_fit(old)
    assert type(restored) is type(fit)
    origins = returns.index[-5:]
    expected, got = fit.forecast(returns, origins, [1, 5]), restored.forecast(returns, origins, [1, 5])
    np.testing.assert_array_equal(got.mean, expected.mean)
    np.testing.assert_array_equal(got.variance, expected.variance)


def test_every_old_module_maps_to_an_importable_one():
    import importlib

    for old, new in RENAMED_MODULES.items():
        assert old.count(".") == 1
        importlib.import_module(new)
