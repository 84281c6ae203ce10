"""Accuracy metrics against hand formulas, and the Diebold–Mariano test of two forecasts."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from python_models.evaluation import metrics


@pytest.fixture
def sample():
    rng = np.random.default_rng(7)
    y = rng.normal(0, 0.02, 400)
    good = y + rng.normal(0, 0.01, 400)
    base = np.full(400, 0.001)
    return y, good, base


def test_point_metrics_match_hand_formulas(sample):
    y, p, _ = sample
    e = p - y
    assert_allclose(metrics.rmse(y, p), np.sqrt((e**2).mean()))
    assert_allclose(metrics.mae(y, p), np.abs(e).mean())
    assert_allclose(metrics.smape(y, p), 100 * np.mean(2 * np.abs(e) / (np.abs(y) + np.abs(p))))
    assert_allclose(metrics.directional_accuracy(y, p), np.mean(np.sign(y) == np.sign(p)))
    assert_allclose(metrics.tracking_error(y, p), pd.Series(e).std())


def test_smape_counts_zero_over_zero_as_zero():
    assert metrics.smape([0.0, 0.1], [0.0, 0.1]) == 0.0


@pytest.mark.parametrize("h", [1, 5])
def test_diebold_mariano_tests_the_squared_error_differential(sample, h):
    # the statistic itself against hand computations and its size on null data: test_dm_size.py
    y, p, base = sample
    stat, pvalue = metrics.diebold_mariano(y, p, base, horizon=h)
    assert (stat, pvalue) == metrics.dm_test((p - y) ** 2 - (base - y) ** 2, h)
    assert stat < 0 and pvalue < 0.05  # the good model beats the constant forecast


def test_diebold_mariano_of_identical_forecasts_is_undefined(sample):
    y, p, _ = sample
    assert np.isnan(metrics.diebold_mariano(y, p, p)[0])


@pytest.mark.parametrize("args", [([1.0, np.nan], [1.0, 2.0]), ([1.0], [1.0, 2.0]), ([], [])])
def test_bad_inputs_raise(args):
    with pytest.raises(ValueError):
        metrics.rmse(*args)


def test_score_panel_scores_each_model_against_the_baseline(sample):
    y, p, base = sample
    dates = pd.bdate_range("2020-01-01", periods=len(y))
    rows = []
    for model, pred in (("random_walk", base), ("good", p)):
        rows.append(
            pd.DataFrame({"model": model, "ticker": "A", "asof_date": dates, "horizon": 1, "y_pred": pred, "y_true": y})
        )
    frame = pd.concat(rows, ignore_index=True)
    frame.loc[frame["asof_date"] > dates[-4], "y_true"] = np.nan  # unrealised rows are skipped
    scores = metrics.score_panel(frame, "random_walk").set_index("model")
    assert scores.loc["good", "n_obs"] == len(y) - 3
    assert_allclose(scores.loc["good", "rmse"], metrics.rmse(y[:-3], p[:-3]))
    assert np.isnan(scores.loc["random_walk", "dm_stat"])
    assert scores.loc["good", "dm_stat"] < 0


def test_ljung_box_matches_statsmodels_on_non_overlapping_errors():
    from statsmodels.stats.diagnostic import acorr_ljungbox

    rng = np.random.default_rng(11)
    shocks = rng.normal(size=2001)
    ar = np.zeros(2000)
    for t in range(1, 2000):
        ar[t] = 0.4 * ar[t - 1] + shocks[t]
    for horizon in (1, 5):
        q, p = metrics.ljung_box(ar, horizon)
        ref = acorr_ljungbox(ar[::horizon], lags=[10])
        assert_allclose([q, p], [ref["lb_stat"].iloc[0], ref["lb_pvalue"].iloc[0]], rtol=1e-10)
    assert metrics.ljung_box(ar)[1] < 1e-6  # AR(1) errors: autocorrelated
    assert metrics.ljung_box(shocks[:500])[1] > 0.01  # white noise: not rejected
    assert np.isnan(metrics.ljung_box(shocks[:40], horizon=5)[1])  # too few non-overlapping errors
