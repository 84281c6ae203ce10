"""The decay detector: Page's CUSUM on the loss differential against the baseline, against a hand loop; a
planted decay found within weeks; null differentials that raise (almost) no alarm; a sell-off that raises
both losses together and no alarm."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from python_models.governance.decay import DecayPolicy, decay_cusum, long_run_sd, relative_loss

POLICY = DecayPolicy(reference=252, lags=21, k=0.5, h=10.0)


def _ar1(n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    e = rng.normal(size=n)
    x = np.empty(n)
    x[0] = e[0]
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


def test_the_long_run_sd_is_bartletts_sum_of_autocovariances_by_a_hand_loop():
    x = np.random.default_rng(0).normal(size=200)
    assert long_run_sd(x, 0) == pytest.approx(x.std(ddof=0), rel=1e-12)
    e = x - x.mean()
    gamma = [sum(e[t] * e[t - j] for t in range(j, 200)) / 200 for j in range(4)]
    hand = gamma[0] + 2 * sum((1 - j / 4) * gamma[j] for j in (1, 2, 3))
    assert long_run_sd(x, 3) == pytest.approx(np.sqrt(hand), rel=1e-12)


def test_the_cusum_is_pages_recursion_on_the_lagged_scale_by_a_hand_loop():
    rng = np.random.default_rng(1)
    d = pd.Series(_ar1(400, 0.5, rng) * 0.01, index=pd.bdate_range("2010-01-01", periods=400))
    d.iloc[300:] += 0.03
    out = decay_cusum(d, POLICY)
    s, alarm = 0.0, False
    for t in range(252, 400):
        window = d.to_numpy()[t - 252 : t]
        e = window - window.mean()
        lr = e @ e / 252 + 2 * sum((1 - j / 22) * (e[j:] @ e[:-j]) / 252 for j in range(1, 22))
        s = max(0.0, s + (d.iloc[t] - window.mean()) / np.sqrt(lr) - 0.5)
        alarm = s > 10.0 or (alarm and s > 0)
        assert out["cusum"].iloc[t] == pytest.approx(s, rel=1e-9, abs=1e-12)
        assert out["decayed"].iloc[t] == alarm
    assert out["scale"].iloc[:252].isna().all() and not out["decayed"].iloc[:252].any()
    # the statistic at a date reads nothing after it
    later = d.copy()
    later.iloc[350:] = 5.0
    pd.testing.assert_frame_equal(decay_cusum(later, POLICY).iloc[:350], out.iloc[:350])


def test_a_planted_decay_is_found_within_weeks_and_null_differentials_raise_almost_no_alarm():
    rng = np.random.default_rng(2)
    delays, false_alarms, null_dates = [], 0, 0
    for _ in range(20):
        noise = _ar1(1200, 0.8, rng)
        scale = long_run_sd(noise, 21)
        null = pd.Series(noise - 0.1 * scale, index=pd.bdate_range("2005-01-03", periods=1200))
        out = decay_cusum(null, POLICY)["decayed"].to_numpy()
        false_alarms += int(np.sum(out[1:] & ~out[:-1]))  # alarms raised
        null_dates += 1200 - 252
        decaying = null.copy()
        decaying.iloc[800:] += 1.5 * scale  # the model loses more than the random walk from date 800 on
        flagged = np.flatnonzero(decay_cusum(decaying, POLICY)["decayed"].to_numpy()[800:])
        delays.append(int(flagged[0]) if len(flagged) else 400)
    # 18 of the 20 found within a quarter (the two others: their reference year had wandered high), most in a month
    assert sum(delay <= 63 for delay in delays) >= 18 and np.median(delays) <= 21, delays
    assert false_alarms <= 2, false_alarms  # in 20 x 948 null dates


def test_a_sell_off_that_raises_both_losses_raises_no_alarm_on_the_relative_differential():
    rng = np.random.default_rng(3)
    n = 800
    base = rng.normal(0, 0.02, (n, 20))  # the random walk's errors, 20 tickers
    base[500:540] *= 5  # a sell-off: every forecast far off for two months
    sell_off = (np.arange(n) >= 500) & (np.arange(n) < 540)
    model = base + rng.normal(0, 0.004, (n, 20)) * np.where(sell_off, 5, 1)[:, None]  # as wrong as the random walk
    dates = pd.bdate_range("2010-01-01", periods=n)
    m, b = pd.Series((model**2).mean(axis=1), index=dates), pd.Series((base**2).mean(axis=1), index=dates)
    relative = relative_loss(m, b)
    assert_allclose(relative, (model**2).mean(axis=1) / (base**2).mean(axis=1) - 1)
    assert not decay_cusum(relative, POLICY)["decayed"].any()
    # the absolute differential swings with the losses' scale, and the CUSUM takes the swings for decay
    assert decay_cusum(m - b, POLICY)["decayed"].iloc[500:560].any()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="reference"):
        DecayPolicy(reference=10)
    with pytest.raises(ValueError, match="lags"):
        DecayPolicy(lags=300)
