"""The feature library against independent pandas implementations, on real data."""

import numpy as np
import pandas as pd
import pytest

from tests.e2e.helpers import read
from tests.reference_features import textbook_adx, ticker_features


@pytest.fixture(scope="module")
def frames(full):
    prices = read(full, "select * from intermediate.int_returns order by ticker, date")
    feats = read(full, "select * from marts.features order by ticker, date")
    market = prices[prices.ticker == "SP500"].set_index("date")
    market = pd.DataFrame({"market_return_1d": market["simple_return"], "market_log_return": market["log_return"]})
    return prices, feats, market


def test_every_feature_matches_pandas(frames):
    prices, feats, market = frames
    for ticker, g in prices.groupby("ticker"):
        expected = ticker_features(g.set_index("date"), market)
        got = feats[feats.ticker == ticker].set_index("date")[expected.columns].astype(float)
        for col in expected.columns:
            a, b = got[col].to_numpy(), expected[col].to_numpy(float)
            assert (np.isnan(a) == np.isnan(b)).all(), f"{ticker} {col}: NULL pattern differs"
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9, equal_nan=True, err_msg=f"{ticker} {col}")


def test_ohlc_features_are_null_for_close_only_series(frames):
    _, feats, _ = frames
    stocks = feats[feats.ticker != "SP500"]
    assert stocks["parkinson_vol_21"].isna().all() and stocks["garman_klass_vol_21"].isna().all()
    assert stocks["volume_zscore_21"].isna().all() and stocks["dollar_volume"].isna().all()
    index = feats[feats.ticker == "SP500"]
    assert index["parkinson_vol_21"].notna().sum() > 1000  # arch's OHLCV covers 2006-2012


def test_calendar_and_cross_sectional_features(frames):
    _, feats, _ = frames
    assert (feats["day_of_week"] == feats["date"].dt.dayofweek + 1).all()
    assert (feats["month"] == feats["date"].dt.month).all()
    first_sessions = feats.groupby(["ticker", feats["date"].dt.to_period("M")])["date"].rank() <= 3
    assert feats.loc[first_sessions, "turn_of_month"].all()
    stocks = feats[(feats.ticker != "SP500") & feats["ret_252d"].notna()]
    counts = stocks.groupby("date")["ret_252d"].transform("count")
    ranks = stocks.groupby("date")["ret_252d"].rank(method="min").sub(1) / (counts - 1)
    np.testing.assert_allclose(stocks["xs_rank_ret_252d"], ranks)
    assert feats.loc[feats.ticker == "SP500", "xs_rank_ret_252d"].isna().all()


def test_variance_ratios_match_arch(frames):
    from arch.unitroot import VarianceRatio

    prices, feats, _ = frames
    rng = np.random.default_rng(0)
    for ticker, g in prices.groupby("ticker"):
        y = np.log(g["adj_close"].to_numpy())
        f = feats[feats.ticker == ticker].reset_index(drop=True)
        assert f["variance_ratio_2"].iloc[:252].isna().all() and f["variance_ratio_2"].iloc[252:].notna().all()
        for i in rng.choice(np.arange(252, len(y)), size=5, replace=False):
            for q in (2, 5, 10):
                ref = VarianceRatio(y[i - 252 : i + 1], lags=q, trend="c", debiased=True, robust=True, overlap=True)
                np.testing.assert_allclose(f.loc[i, f"variance_ratio_{q}"], ref.vr, rtol=1e-9)
                np.testing.assert_allclose(f.loc[i, f"variance_ratio_z_{q}"], ref.stat, rtol=1e-7)


def test_holiday_features_match_the_exchange_rules(frames):
    import exchange_calendars as xcals

    _, feats, _ = frames
    rules = xcals.get_calendar("XNYS", start="1990-01-01").regular_holidays
    holidays = pd.DatetimeIndex(rules.holidays(pd.Timestamp("2005-01-01"), pd.Timestamp("2014-12-31")))
    dates = pd.DatetimeIndex(feats["date"].unique()).sort_values()
    nxt = holidays[holidays.searchsorted(dates, side="right")]
    prv = holidays[holidays.searchsorted(dates, side="left") - 1]
    got = feats.drop_duplicates("date").set_index("date").loc[dates]
    np.testing.assert_array_equal(got["days_to_holiday"], (nxt - dates).days)
    np.testing.assert_array_equal(got["days_since_holiday"], (dates - prv).days)
    next_weekday = dates + pd.offsets.BDay(1)
    np.testing.assert_array_equal(got["pre_holiday"], next_weekday.isin(holidays))
    assert not got.index.isin(holidays).any()  # no session falls on a regular holiday
    # Ad-hoc closures are not holidays here: 2012-10-26 was a normal session before Hurricane Sandy.
    assert got.loc[pd.Timestamp("2012-10-26"), "pre_holiday"] == False  # noqa: E712


def test_adx_matches_a_textbook_implementation(frames):
    prices, feats, _ = frames
    index = prices[prices.ticker == "SP500"].set_index("date")
    expected = textbook_adx(index["high"], index["low"], index["close"])
    got = feats[feats.ticker == "SP500"].set_index("date")[expected.columns]
    assert got["adx_14"].notna().sum() > 1500
    np.testing.assert_allclose(got.to_numpy(float), expected.to_numpy(float), rtol=1e-9, equal_nan=True)
    assert feats.loc[feats.ticker != "SP500", "adx_14"].isna().all()  # close-only stocks
