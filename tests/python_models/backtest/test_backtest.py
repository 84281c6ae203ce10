"""The backtester against a plain loop and hand-checkable cases: timing, calendar, cash, costs."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from python_models.backtest.costs import CostModel
from python_models.backtest.engine import run_backtest
from python_models.backtest.performance import sharpe_ratio

DATES = pd.bdate_range("2020-01-01", periods=300)


def _reference(weights, returns, rf, execution, every, on=None, bps=10.0):
    """One session at a time, the obvious way."""
    chosen = weights.iloc[::every]
    lag = 0 if execution == "close" else 1
    trades = {returns.index.get_loc(d) + lag: chosen.loc[d].to_numpy() for d in chosen.index}
    held = np.zeros(returns.shape[1])
    rows = []
    for s in range(len(returns)):
        r = returns.iloc[s].to_numpy()
        turnover = 0.0
        if execution == "next_open":
            o = on.iloc[s].to_numpy()
            g_on = held @ o
            held = held * (1 + o) / (1 + g_on)
            if s in trades:
                turnover = np.abs(trades[s] - held).sum()
                held = trades[s]
            intraday = (1 + r) / (1 + o) - 1
            g_id = held @ intraday + (1 - held.sum()) * rf[s]
            held = held * (1 + intraday) / (1 + g_id)
            gross = (1 + g_on) * (1 + g_id) - 1
        else:
            gross = held @ r + (1 - held.sum()) * rf[s]
            held = held * (1 + r) / (1 + gross)
            if s in trades:
                turnover = np.abs(trades[s] - held).sum()
                held = trades[s]
        # the cost is paid when the book trades and would have grown with it to the close
        rows.append((gross, turnover, gross - turnover * bps / 1e4 * (1 + gross)))
    return pd.DataFrame(rows, columns=["gross_return", "turnover", "net_return"], index=returns.index)


@pytest.mark.parametrize("execution", ["close", "next_close", "next_open"])
@pytest.mark.parametrize("every", [1, 5])
def test_backtest_matches_a_session_by_session_loop(execution, every):
    rng = np.random.default_rng(3)
    returns = pd.DataFrame(rng.normal(0.0005, 0.02, (300, 4)), index=DATES, columns=list("ABCD"))
    on = pd.DataFrame(rng.normal(0.0, 0.005, (300, 4)), index=DATES, columns=list("ABCD"))
    weights = pd.DataFrame(rng.uniform(0, 0.4, (250, 4)), index=DATES[30:280], columns=list("ABCD"))
    weights.iloc[::7, 0] = 0.9  # a levered book now and then: cash goes negative and pays the rate
    rf = np.full(300, 0.0001)
    got = run_backtest(
        weights,
        returns,
        execution=execution,
        rebalance=every,
        cash_rate=pd.Series(rf, index=DATES),
        open_returns=on,
    )
    ref = _reference(weights, returns, rf, execution, every, on)
    cols = ["gross_return", "turnover", "net_return"]
    assert_allclose(got[cols].to_numpy(), ref[cols].to_numpy(), atol=1e-13)
    assert_allclose(got["equity"], np.cumprod(1 + ref["net_return"]), rtol=1e-12)


def test_constant_weights_on_two_assets_by_hand():
    returns = pd.DataFrame({"A": [0.10, 0.10, -0.10], "B": [0.0, -0.10, 0.0]}, index=DATES[:3])
    weights = pd.DataFrame({"A": 0.5, "B": 0.5}, index=DATES[:3])
    got = run_backtest(weights, returns, cost_bps=0)
    # day 1: bought at its close, earns nothing; day 2: 0.5*0.10 + 0.5*(-0.10) = 0; day 3: 0.5*(-0.10) = -0.05
    assert_allclose(got["gross_return"], [0.0, 0.0, -0.05], atol=1e-15)
    # day 2 drifts the book to 0.55 / 0.45 (total 1.0): back to 50/50 trades 0.05 + 0.05;
    # day 3 drifts it to 0.45 / 0.50 of 0.95: back to 50/50 trades 2 * (0.5 - 0.45 / 0.95)
    assert_allclose(got["turnover"], [1.0, 0.1, 2 * (0.5 - 0.45 / 0.95)], atol=1e-12)


def test_a_strategy_trading_every_day_pays_exactly_the_expected_cost():
    returns = pd.DataFrame({"A": np.zeros(20)}, index=DATES[:20])
    weights = pd.DataFrame({"A": np.tile([1.0, 0.0], 10)}, index=DATES[:20])  # all in, all out, every day
    costs = CostModel(commission_bps=3.0, half_spread_bps=4.5)
    got = run_backtest(weights, returns, costs=costs)
    assert_allclose(got["turnover"], 1.0)
    assert_allclose(got["cost"], 7.5e-4)  # (3 + 4.5) bps per unit traded
    assert_allclose(got["equity"].iloc[-1], (1 - 7.5e-4) ** 20)


def test_same_bar_lookahead_is_shifted_away():
    rng = np.random.default_rng(5)
    r = pd.DataFrame({"A": rng.normal(0.0, 0.01, 3000)}, index=pd.bdate_range("2000-01-03", periods=3000))
    peeking = (r > 0).astype(float)  # "buy on the days that go up", known only at that day's close
    cheat = (peeking["A"] * r["A"]).to_numpy()  # what it would earn on the same bar
    assert sharpe_ratio(cheat) > 10
    for execution, lag in (("close", 1), ("next_close", 2)):
        got = run_backtest(peeking, r, cost_bps=0, execution=execution)
        # the position earns only sessions after its decision: no better than chance
        assert_allclose(got["gross_return"], (peeking["A"].shift(lag) * r["A"]).fillna(0.0), atol=1e-15)
        assert abs(sharpe_ratio(got["gross_return"])) < 1.0


def test_cash_earns_the_rate_and_a_levered_book_pays_it():
    returns = pd.DataFrame({"A": np.zeros(5)}, index=DATES[:5])
    rate = pd.Series(0.0002, index=DATES[:5])
    cash = run_backtest(pd.DataFrame({"A": 0.0}, index=DATES[:5]), returns, cost_bps=0, cash_rate=rate)
    assert_allclose(cash["gross_return"], 0.0002)
    levered = run_backtest(pd.DataFrame({"A": 1.5}, index=DATES[:1]), returns, cost_bps=0, cash_rate=rate)
    assert_allclose(levered["gross_return"].iloc[1], -0.5 * 0.0002)
    assert_allclose(levered["cash_weight"].iloc[1], -0.5)


def test_square_root_impact_by_hand():
    returns = pd.DataFrame({"A": np.zeros(3)}, index=DATES[:3])
    weights = pd.DataFrame({"A": [0.0, 0.5, 0.5]}, index=DATES[:3])
    dv = pd.DataFrame({"A": 2e6}, index=DATES[:3])
    vol = pd.DataFrame({"A": 0.02}, index=DATES[:3])
    costs = CostModel(commission_bps=1.0, impact_coefficient=0.5)
    got = run_backtest(weights, returns, costs=costs, dollar_volume=dv, volatility=vol, aum=4e6)
    # buying half of a 4M book = 2M = 100 % of the day's volume: 0.5 * 0.02 * sqrt(1) * 0.5
    assert_allclose(got["impact_cost"], [0.0, 0.005, 0.0])
    assert_allclose(got["cost"], [0.0, 0.005 + 0.5 * 1e-4, 0.0])
    small = run_backtest(weights, returns, costs=costs, dollar_volume=dv, volatility=vol, aum=4e4)
    assert_allclose(small["impact_cost"].iloc[1], 0.005 * np.sqrt(0.01))  # 100x smaller book: sqrt law


def test_calendar_rebalancing_trades_once_a_month_and_drifts_between():
    rng = np.random.default_rng(8)
    idx = pd.bdate_range("2021-01-01", periods=130)
    returns = pd.DataFrame(rng.normal(0, 0.01, (130, 2)), index=idx, columns=["A", "B"])
    weights = pd.DataFrame({"A": 0.6, "B": 0.4}, index=idx)
    got = run_backtest(weights, returns, rebalance="M")
    month_ends = pd.Series(idx, index=idx).groupby(idx.to_period("M")).max()
    traded = got.index[got["turnover"] > 0]
    assert set(traded) == set(month_ends)


def test_bad_inputs_are_refused():
    returns = pd.DataFrame({"A": [0.01, 0.02]}, index=DATES[:2])
    w = pd.DataFrame({"A": [0.1, 0.1]}, index=DATES[:2])
    with pytest.raises(ValueError, match="open_returns"):
        run_backtest(w, returns, execution="next_open")
    with pytest.raises(ValueError, match="execution"):
        run_backtest(w, returns, execution="same_bar")
    with pytest.raises(ValueError, match="missing from returns"):
        run_backtest(pd.DataFrame({"A": [0.1]}, index=[pd.Timestamp("2019-06-01")]), returns)
    with pytest.raises(ValueError, match="rebalance"):
        run_backtest(w, returns, rebalance="Q")
    with pytest.raises(ValueError, match="dollar_volume"):
        run_backtest(w, returns, costs=CostModel(impact_coefficient=0.1))
    with pytest.raises(ValueError, match="non-negative"):
        CostModel(half_spread_bps=-1)


def test_null_random_signals_on_the_default_data_earn_a_sharpe_near_zero():
    from dagster_pmx.defs.ingest.sources import BundledSource

    prices = BundledSource().prices(None)
    close = prices[prices["source"] == "skfolio"].pivot(index="date", columns="ticker", values="adj_close")
    returns = close.drop(columns="SP500").pct_change().loc["2005-01-01":]
    rng = np.random.default_rng(0)
    # a random walk's signal: a random direction per stock, re-drawn every 21 sessions, market-neutral sizing
    draws = rng.choice([-1.0, 1.0], size=(len(returns) // 21 + 1, returns.shape[1]))
    signs = pd.DataFrame(np.repeat(draws, 21, axis=0)[: len(returns)], index=returns.index, columns=returns.columns)
    weights = signs.sub(signs.mean(axis=1), axis=0) * 0.05
    got = run_backtest(weights, returns, cost_bps=0)
    years = len(returns) / 252
    assert abs(sharpe_ratio(got["gross_return"])) < 3 / np.sqrt(years)  # within 3 standard errors of 0
