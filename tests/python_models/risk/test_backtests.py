"""Kupiec and Christoffersen against the likelihoods multiplied out session by session."""

import math

import numpy as np
import pytest
from scipy import stats

from python_models.risk.backtests import christoffersen, kupiec, transitions


def _bernoulli_loglik(hits, p: float) -> float:
    return sum(math.log(p if h else 1 - p) for h in hits)


def _markov_loglik(hits) -> float:
    """The first-order Markov chain's log-likelihood at its own estimates, one transition at a time."""
    counts = {(i, j): 0 for i in (0, 1) for j in (0, 1)}
    for a, b in zip(hits[:-1], hits[1:], strict=True):
        counts[(a, b)] += 1
    total = 0.0
    for a, b in zip(hits[:-1], hits[1:], strict=True):
        leaving = counts[(a, 0)] + counts[(a, 1)]
        total += math.log(counts[(a, b)] / leaving)
    return total


SEQUENCES = {
    "right rate, scattered": [1 if i % 100 == 37 else 0 for i in range(500)],
    "too many": [1 if i % 20 == 3 else 0 for i in range(500)],
    "clustered": [1 if 200 <= i < 205 else 0 for i in range(500)],
    "none": [0] * 250,
}


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_kupiec_is_the_likelihood_ratio_of_the_observed_rate(name):
    hits = SEQUENCES[name]
    rate = sum(hits) / len(hits)
    observed = _bernoulli_loglik(hits, rate) if 0 < rate < 1 else 0.0
    expected = 2 * (observed - _bernoulli_loglik(hits, 0.01))
    got = kupiec(hits, 0.01)
    assert got.statistic == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert got.pvalue == pytest.approx(stats.chi2.sf(expected, 1), rel=1e-12)


@pytest.mark.parametrize("name", [n for n in SEQUENCES if n != "none"])
def test_christoffersen_is_the_markov_chain_against_independence(name):
    hits = SEQUENCES[name]
    later = hits[1:]
    rate = sum(later) / len(later)
    independence = 2 * (_markov_loglik(hits) - _bernoulli_loglik(later, rate))
    independent, conditional = christoffersen(hits, 0.01)
    assert independent.statistic == pytest.approx(independence, rel=1e-10, abs=1e-10)
    assert conditional.statistic == pytest.approx(independence + kupiec(later, 0.01).statistic, rel=1e-10)
    assert conditional.pvalue == pytest.approx(stats.chi2.sf(conditional.statistic, 2), rel=1e-12)


def test_the_tests_accept_a_good_var_and_reject_the_bad_ones():
    good, many, clustered = (SEQUENCES[n] for n in ("right rate, scattered", "too many", "clustered"))
    assert kupiec(good, 0.01).pvalue > 0.5 and christoffersen(good, 0.01)[1].pvalue > 0.1
    assert kupiec(many, 0.01).pvalue < 1e-6  # 5 % of sessions against 1 %
    assert kupiec(clustered, 0.01).pvalue > 0.5  # 1 % of sessions: the right count...
    assert christoffersen(clustered, 0.01)[0].pvalue < 1e-3  # ...all in one week


def test_the_size_is_near_nominal_on_independent_draws():
    rng = np.random.default_rng(0)
    rejections = [kupiec(rng.random(1000) < 0.05, 0.05).pvalue < 0.05 for _ in range(400)]
    assert 0.02 < np.mean(rejections) < 0.09


def test_transitions_and_bad_input():
    assert transitions([0, 1, 1, 0, 0]) == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="0/1"):
        kupiec([0, 2, 1], 0.01)
    with pytest.raises(ValueError, match="tail probability"):
        kupiec([0, 1], 1.5)


def test_the_exceedance_table_scores_each_estimate_against_the_next_session():
    import pandas as pd

    from python_models.risk.backtests import exceedance_table, exceedances

    dates = pd.bdate_range("2020-01-01", periods=6)
    returns = pd.Series([0.0, -0.03, 0.01, -0.05, 0.02, -0.04], index=dates)
    estimates = pd.DataFrame(
        {
            "date": dates,
            "method": "historical",
            "level": 0.99,
            "horizon": 1,
            "var": [0.02, 0.02, 0.06, 0.02, 0.01, 0.02],
            "es": 0.07,
        }
    )
    marked = exceedances(returns, estimates)
    # the VaR of each close against the loss of the session after it; the last close has none
    assert marked["exceeded"].tolist() == [True, False, False, False, True]
    assert marked["next_return"].tolist() == [-0.03, 0.01, -0.05, 0.02, -0.04]
    table = exceedance_table(returns, estimates)
    assert table[["sessions", "exceedances"]].values.tolist() == [[5, 2]]
    assert table["kupiec_pvalue"].iloc[0] == pytest.approx(kupiec(marked["exceeded"].to_numpy(), 0.01).pvalue)
