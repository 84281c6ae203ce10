"""The barbell: bond proxy and duration timing, risky share by regime, the Kelly barbell and risk parity books."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from sklearn.covariance import ledoit_wolf

from python_models.portfolio.allocation import BOND, barbell_book, risk_parity_book, trailing_covariance
from python_models.portfolio.barbell import BarbellPolicy, risky_share
from python_models.portfolio.safe_sleeve import (
    PUBLICATION_LAG_MONTHS,
    bond_share,
    bond_total_returns,
    daily_bond_returns,
    yield_change_forecast,
)
from python_models.portfolio.sizing import confidence_scale, kelly_portfolio, risk_parity_weights


def months(n, start="1970-01-01"):
    return pd.date_range(start, periods=n, freq="MS")


def test_bond_return_is_carry_when_yields_stand_still():
    y = pd.Series(0.06, index=months(5))
    r = bond_total_returns(y, duration=8.0)
    assert np.isnan(r.iloc[0])
    assert_allclose(r.iloc[1:], 0.005, rtol=0, atol=1e-15)


def test_bond_return_matches_repricing_a_zero_coupon_bond():
    # a zero with maturity T: modified duration T / (1 + y), convexity T (T + 1) / (1 + y)^2
    T, y0, y1 = 10.0, 0.05, 0.0512
    exact = (1 + y1) ** -(T - 1 / 12) / (1 + y0) ** -T - 1
    d, c = T / (1 + y0), T * (T + 1) / (1 + y0) ** 2
    approx = bond_total_returns(pd.Series([y0, y1], index=months(2)), duration=d, convexity=c).iloc[1]
    # the proxy's carry is y / 12 (simple), the exact one compounds: the gap is second order
    assert abs(approx - exact) < 5e-4
    assert approx < 0 and exact < 0  # a 12 bp rise costs a 10-year bond about 1.1 %
    # each term by hand: carry y0 / 12, duration -d dy, convexity c dy^2 / 2 (its sign matters: +1.6e-4 here)
    dy = y1 - y0
    assert_allclose(approx, y0 / 12 - d * dy + 0.5 * c * dy**2, rtol=1e-12)
    flat = bond_total_returns(pd.Series([y0, y1], index=months(2)), duration=d, convexity=0.0).iloc[1]
    assert_allclose(approx - flat, 0.5 * c * dy**2, rtol=1e-9)


def test_daily_bond_returns_pay_the_carry_daily_and_a_yield_change_when_it_is_published():
    y = pd.Series([0.05, 0.052, 0.049], index=months(3, "2020-01-01"))
    sessions = pd.bdate_range("2020-01-01", "2020-04-30")
    daily = daily_bond_returns(y, sessions, duration=10.0)
    grown = (1 + daily).groupby(sessions.to_period("M")).prod() - 1
    monthly = bond_total_returns(y, duration=10.0)
    carry = y.shift(1) / 12
    price = monthly - carry  # the price effect of each month's yield change
    assert np.isnan(daily["2020-01"]).all()  # no yield before January: its carry is unknown
    # February earns its carry; March its carry and February's price effect; April its carry (from March's
    # yield) and March's price effect, though March is the series' last month
    assert_allclose(grown["2020-02"], carry.iloc[1], rtol=1e-12)
    assert_allclose(grown["2020-03"], (1 + carry.iloc[2]) * (1 + price.iloc[1]) - 1, rtol=1e-12)
    assert_allclose(grown["2020-04"], (1 + y.iloc[2] / 12) * (1 + price.iloc[2]) - 1, rtol=1e-12)
    # point in time: a month's yield moves no session before the month after it
    moved = daily_bond_returns(y.where(y.index != "2020-03-01", 0.06), sessions, duration=10.0)
    assert_allclose(moved[:"2020-03-31"], daily[:"2020-03-31"], rtol=0, atol=0)
    assert not np.allclose(moved["2020-04-01"], daily["2020-04-01"])


def test_monthly_series_must_be_regular():
    y = pd.Series([0.05, 0.06], index=pd.DatetimeIndex(["2020-01-01", "2020-03-01"]))
    with pytest.raises(ValueError, match="without gaps"):
        bond_total_returns(y)


def planted_yields(n=400, phi=0.8, seed=3):
    rng = np.random.default_rng(seed)
    d = np.zeros(n)
    for t in range(1, n):
        d[t] = phi * d[t - 1] + rng.normal(0, 0.001)
    y = pd.Series(0.06 + np.cumsum(d), index=months(n))
    cpi = pd.Series(100 * np.exp(np.cumsum(rng.normal(0.002, 0.001, n))), index=months(n))
    return y, cpi


def test_yield_forecast_recovers_planted_persistence():
    # AR(1) changes with phi = 0.8: the change two months past the last known one has slope phi^2
    y, cpi = planted_yields()
    f = yield_change_forecast(y, cpi)
    realised = y.diff()
    ok = f["forecast_change"].notna()
    corr = np.corrcoef(f.loc[ok, "forecast_change"], realised[ok])[0, 1]
    assert corr > 0.45
    known = y.shift(PUBLICATION_LAG_MONTHS).diff()
    slope = np.polyfit(known[ok], f.loc[ok, "forecast_change"], 1)[0]
    assert 0.5 < slope < 0.78


def test_yield_forecast_is_point_in_time():
    y, cpi = planted_yields()
    clean = yield_change_forecast(y, cpi)
    cut = 250
    y2, cpi2 = y.copy(), cpi.copy()
    y2.iloc[cut + 1 :], cpi2.iloc[cut + 1 :] = 1e6, 1e-6
    poisoned = yield_change_forecast(y2, cpi2)
    # month m uses values up to m - lag: months up to cut + lag see only clean data
    upto = cut + PUBLICATION_LAG_MONTHS
    assert_allclose(poisoned["forecast_change"].iloc[: upto + 1], clean["forecast_change"].iloc[: upto + 1])
    assert not np.allclose(poisoned["forecast_change"].iloc[upto + 1 :], clean["forecast_change"].iloc[upto + 1 :])


def test_bond_share_rule():
    assert_allclose(
        bond_share([-0.2, 0.0, 0.1, 0.4, np.nan, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2, 0.0]), [1, 0.5, 0.25, 0, 0, 0]
    )


def test_risky_share_by_regime_and_volatility():
    policy = BarbellPolicy(regime_share=(0.9, 0.2), target_vol=0.15, min_risky=0.1, max_risky=0.9)
    dates = pd.bdate_range("2020-01-01", periods=4)
    probs = pd.DataFrame([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [1.0, 0.0]], index=dates)
    vol = pd.Series([0.10, 0.15, 0.60, 0.30], index=dates)
    # calm and quiet: 0.9; split: 0.55; stressed at 4x target: 0.05 -> floor 0.1; calm at 2x target: 0.45
    assert_allclose(risky_share(probs, vol, policy), [0.9, 0.55, 0.1, 0.45])
    assert risky_share(probs, vol.iloc[:2], policy).iloc[3] == 0.1  # unknown volatility: the floor
    with pytest.raises(ValueError, match="sum to one"):
        risky_share(probs * 0.5, vol, policy)
    with pytest.raises(ValueError, match="regime shares"):
        risky_share(probs, vol, BarbellPolicy.linear(3))
    assert_allclose(BarbellPolicy.linear(4).regime_share, [0.9, 0.9 - 0.7 / 3, 0.9 - 1.4 / 3, 0.2])


def market(n=320, k=4, seed=0):
    rng = np.random.default_rng(seed)
    cov = 0.0001 * (0.5 * np.eye(k) + 0.5)
    r = rng.multivariate_normal(np.zeros(k), cov, size=n)
    return pd.DataFrame(r, index=pd.bdate_range("2019-01-01", periods=n), columns=list("ABCD"))


def test_trailing_covariance_is_ledoit_wolf_of_the_window_and_point_in_time():
    r = market()
    date = r.index[300]
    tickers, cov = trailing_covariance(r, date, window=252)
    assert tickers == list("ABCD")
    assert_allclose(cov, ledoit_wolf(r.iloc[49:301].to_numpy())[0])
    later = r.copy()
    later.iloc[301:] = 1e3
    assert_allclose(trailing_covariance(later, date, window=252)[1], cov)
    short = r.copy()
    short.iloc[:200, 1] = np.nan  # B has only 101 returns in the window: left out
    assert trailing_covariance(short, date, window=252)[0] == ["A", "C", "D"]


def test_barbell_book_is_the_capped_kelly_portfolio_with_the_safe_sleeve_split():
    r = market()
    date = r.index[300]
    signals = pd.DataFrame(
        {
            "date": date,
            "ticker": list("ABCD"),
            "expected_return": [0.02, 0.01, -0.01, 0.03],
            "forecast_std": [0.05, 0.04, 0.05, 0.06],
            "confidence": [0.8, 0.6, 0.9, 0.5],  # D is below the 0.55 floor
            "tradable": [True, True, True, True],
        }
    )
    share = pd.Series({date: 0.6})
    bond = pd.Series({date: 0.25})
    book = barbell_book(signals, r, share, bond, fraction=0.5, cap=0.5)
    tickers, cov = trailing_covariance(r, date, 252)
    sd = np.sqrt(np.diag(cov))[:2]
    corr = cov[:2, :2] / np.outer(sd, sd)
    sigma = corr * np.outer([0.05, 0.04], [0.05, 0.04])
    mu = np.array([0.02, 0.01]) * confidence_scale([0.8, 0.6])
    expected = kelly_portfolio(mu, sigma, fraction=0.5, cap=0.5, max_gross=0.6)
    expected = expected * min(1.0, 0.6 / expected.sum())
    row = book.loc[date]
    assert_allclose(row[["A", "B"]].to_numpy(), expected, atol=1e-6)
    assert row.get("C", 0.0) == 0.0 and row.get("D", 0.0) == 0.0
    assert row[["A", "B"]].sum() <= 0.6 + 1e-9
    assert_allclose(row[BOND], 0.25 * (1 - row[["A", "B"]].sum()), atol=1e-12)

    blocked = signals.assign(tradable=False)
    assert barbell_book(blocked, r, share, bond).loc[date].drop(BOND).abs().sum() == 0.0
    assert barbell_book(blocked, r, share, bond).loc[date, BOND] == 0.25


def test_risk_parity_book_equals_the_programme_on_the_trailing_covariance():
    r = market()
    dates = r.index[260:300]
    book = risk_parity_book(r, dates, cap=0.3, every=10)
    assert list(book.index) == list(dates[::10])
    for date in book.index:
        _, cov = trailing_covariance(r, date, 252)
        assert_allclose(book.loc[date].to_numpy(), np.minimum(risk_parity_weights(cov), 0.3), atol=1e-9)
    capped = risk_parity_book(r, dates, cap=0.2, every=10)
    assert capped.to_numpy().max() <= 0.2 and capped.sum(axis=1).max() <= 0.8 + 1e-12


def test_books_extended_after_a_date_decide_on_the_whole_historys_grid():
    r = market(n=340)
    dates = r.index[260:330]
    rng = np.random.default_rng(3)
    signals = pd.DataFrame(
        {
            "date": np.repeat(dates, 4),
            "ticker": np.tile(list("ABCD"), len(dates)),
            "expected_return": rng.normal(0.01, 0.01, 4 * len(dates)),
            "forecast_std": 0.05,
            "confidence": rng.uniform(0.5, 0.9, 4 * len(dates)),
            "tradable": True,
        }
    )
    share, bond = pd.Series(0.7, index=dates), pd.Series(0.3, index=dates)
    whole = barbell_book(signals, r, share, bond, every=5)
    cut = dates[33]  # not on the grid: the next decision is the grid's, not the day after the cut
    later = signals[signals["date"] > cut]
    tail = barbell_book(later, r, share, bond, every=5, dates=dates, after=cut)
    assert tail.index.min() == dates[35]
    pd.testing.assert_frame_equal(tail, whole.loc[whole.index > cut, tail.columns], check_exact=True)
    rp_whole = risk_parity_book(r, dates, every=5)
    rp_tail = risk_parity_book(r, dates, every=5, after=cut)
    pd.testing.assert_frame_equal(rp_tail, rp_whole.loc[rp_whole.index > cut], check_exact=True)
    with pytest.raises(ValueError, match="no signals on the decision date"):
        barbell_book(later[later["date"] != dates[40]], r, share, bond, every=5, dates=dates, after=cut)
