"""The paper broker and the ledger it books, against hand computations and the backtester."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from python_models.backtest.costs import CostModel
from python_models.backtest.engine import run_backtest
from python_models.trading.broker import Account, Order, SessionBar
from python_models.trading.paper_broker import PaperBroker, PaperConfig
from python_models.trading.paper_trading import orders_for_targets, reconcile, trade_sessions

D0, D1, D2 = pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-04")


def order(ticker, quantity, price=50.0, date=D0) -> Order:
    return Order(f"s:{date:%Y-%m-%d}:{ticker}", "s", date, ticker, quantity, price, 0.1)


def cash_account(cash, positions=None, marks=None) -> Account:
    return Account(cash=cash, positions=positions or {}, marks=marks or {})


def test_targets_become_whole_lot_orders_and_small_trades_are_dropped():
    config = PaperConfig(capital=1e6, lot_size=100, min_trade_value=1_000)
    account = cash_account(1e6, {"B": 3000.0, "C": 10.0}, {"A": 33.0, "B": 50.0, "C": 20.0})
    # NAV = 1e6 + 150_000 + 200; A: 10 % of NAV / 33 -> 3_485.5 shares -> 3_400 in lots of 100
    orders = {o.ticker: o for o in orders_for_targets("s", D0, pd.Series({"A": 0.1, "B": 0.1305}), account, config)}
    nav = 1e6 + 3000 * 50 + 10 * 20
    assert orders["A"].quantity == np.trunc(0.1 * nav / 33 / 100) * 100 == 3400
    # B's target (3_002 -> 3_000 shares) is what it holds: no order; C (worth 200) is sold whole all the same
    assert "B" not in orders and orders["C"].quantity == -10
    assert orders["A"].reference_price == 33.0 and orders["A"].order_id == "s:2024-01-02:A"


def test_purchases_are_scaled_down_to_the_cash():
    config = PaperConfig(capital=1e6, costs=CostModel(commission_bps=100.0))
    account = cash_account(1e6, marks={"A": 10.0, "B": 10.0})
    orders = orders_for_targets("s", D0, pd.Series({"A": 0.5, "B": 0.5}), account, config)
    spend = sum(o.quantity * o.reference_price * 1.01 for o in orders)
    assert spend <= 1e6 and spend > 1e6 - 2 * 10 * 1.01  # every cent used, up to a share of each
    with pytest.raises(ValueError, match="finite and non-negative"):
        orders_for_targets("s", D0, pd.Series({"A": -0.1}), account, config)


def test_a_close_fill_pays_the_backtesters_costs_and_cash_earns_its_rate():
    costs = CostModel(commission_bps=10.0, half_spread_bps=2.0)
    broker = PaperBroker(PaperConfig(capital=1e6, costs=costs), cash_account(1e6, marks={"A": 50.0}))
    broker.submit([order("A", 1000)])
    (fill,) = broker.fills(SessionBar(D1, pd.Series({"A": 55.0}), pd.Series({"A": 0.1}), cash_rate=1e-4))
    # unheld: the new mark is the raw close; interest on the cash held over the session, before the close's fill
    assert fill.price == 55.0 and fill.status == "filled"
    assert_allclose(fill.commission, 12e-4 * 55_000)
    account = broker.account()
    assert_allclose(account.cash, 1e6 * (1 + 1e-4) - 55_000 - 12e-4 * 55_000)
    # held from now on: the mark grows with the total return, not the raw close
    broker.fills(SessionBar(D2, pd.Series({"A": 40.0}), pd.Series({"A": 0.02})))
    assert_allclose(broker.account().marks["A"], 55.0 * 1.02)
    assert_allclose(broker.account().nav, account.cash + 1000 * 55.0 * 1.02)


def test_an_open_fill_takes_the_previous_mark_times_the_overnight_return():
    broker = PaperBroker(PaperConfig(capital=1e6, fill_at="next_open"), cash_account(1e6, marks={"A": 50.0}))
    broker.submit([order("A", 100)])
    session = SessionBar(D1, pd.Series({"A": 52.0}), pd.Series({"A": 0.04}), open_return=pd.Series({"A": 0.01}),
                         cash_rate=1e-4)  # fmt: skip
    (fill,) = broker.fills(session)
    assert_allclose(fill.price, 50.5)
    # cash after the open's purchase earns the session's rate
    assert_allclose(broker.account().cash, (1e6 - 5050 - 10e-4 * 5050) * (1 + 1e-4))


def test_participation_limit_gives_a_partial_fill_with_square_root_impact():
    costs = CostModel(commission_bps=10.0, impact_coefficient=0.1)
    config = PaperConfig(capital=1e7, participation_limit=0.1, costs=costs)
    broker = PaperBroker(config, cash_account(1e7, marks={"A": 50.0}))
    broker.submit([order("A", 10_000)])
    (fill,) = broker.fills(
        SessionBar(
            D1,
            pd.Series({"A": 50.0}),
            pd.Series({"A": 0.0}),
            dollar_volume=pd.Series({"A": 2e6}),
            volatility=pd.Series({"A": 0.02}),
        )  # fmt: skip
    )
    # 10 % of $2M at $50 is 4_000 shares
    assert (fill.quantity, fill.status, fill.reason) == (4000, "partial", "participation")
    value = 4000 * 50.0
    assert_allclose(fill.impact_cost, 0.1 * 0.02 * np.sqrt(value / 2e6) * value)
    # the rest is cancelled, not carried: the next session fills nothing
    assert broker.fills(SessionBar(D2, pd.Series({"A": 50.0}), pd.Series({"A": 0.0}))) == []


def test_a_purchase_is_cut_to_the_cash_and_a_sale_never_goes_short():
    broker = PaperBroker(PaperConfig(capital=1e4), cash_account(1e4, {"B": 10.0}, {"A": 100.0, "B": 10.0}))
    broker.submit([order("A", 100), order("B", -25)])
    fills = {f.ticker: f for f in broker.fills(SessionBar(D1, pd.Series({"A": 120.0, "B": 10.0}),
                                                          pd.Series({"A": 0.0, "B": 0.0})))}  # fmt: skip
    # B sold first (only the 10 held), then A bought with what the cash pays for at 120 plus 10 bps
    assert fills["B"].quantity == -10 and fills["B"].status == "partial"
    affordable = np.floor((1e4 + 100 * (1 - 1e-3)) / (120 * (1 + 1e-3)))
    assert (fills["A"].quantity, fills["A"].reason) == (affordable, "cash") and affordable == 84
    assert broker.account().cash >= 0 and "B" not in broker.account().positions


def test_an_order_cannot_fill_in_the_session_it_was_decided_in():
    broker = PaperBroker(PaperConfig(), cash_account(1e6, marks={"A": 1.0}))
    broker.submit([order("A", 1, date=D1)])
    with pytest.raises(ValueError, match="cannot fill"):
        broker.fills(SessionBar(D1, pd.Series({"A": 1.0}), pd.Series({"A": 0.0})))
    with pytest.raises(ValueError, match="participation_limit"):
        PaperConfig(participation_limit=0)
    with pytest.raises(ValueError, match="fill_at"):
        PaperConfig(fill_at="close")


def market(seed=0, n=90, tickers=("A", "B", "C")):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=n)
    returns = pd.DataFrame(rng.normal(3e-4, 0.015, (n, len(tickers))), index=dates, columns=list(tickers))
    closes = 40 * (1 + returns).cumprod()
    weights = pd.DataFrame(rng.uniform(0, 0.3, (n, len(tickers))), index=dates, columns=list(tickers)).iloc[::5]
    rates = pd.Series(1e-4, index=dates)
    bars = [SessionBar(d, closes.loc[d], returns.loc[d], cash_rate=rates[d]) for d in dates]
    return returns, weights, rates, bars


COSTS = CostModel(commission_bps=10.0, half_spread_bps=2.0)


def test_the_ledger_reconciles_and_a_tampered_ledger_does_not():
    returns, weights, _, bars = market()
    config = PaperConfig(capital=1e7, lot_size=10, costs=COSTS)
    ledger = trade_sessions("s", PaperBroker(config), weights, bars, config)
    assert reconcile(ledger).empty
    assert set(ledger.fills["status"]) <= {"filled", "partial", "cancelled"} and len(ledger.fills) > 20
    positions = ledger.positions.copy()
    positions.loc[5, "quantity"] += 10
    broken = reconcile(type(ledger)(ledger.orders, ledger.fills, positions, ledger.cash, ledger.nav))
    assert broken[["date", "ticker"]].values.tolist() == [positions.loc[5, ["date", "ticker"]].tolist()]
    assert set(broken["identity"]) == {"positions = cumulative fills"}
    nav = ledger.nav.copy()
    nav.loc[9, "nav"] += 50.0
    broken = reconcile(type(ledger)(ledger.orders, ledger.fills, ledger.positions, ledger.cash, nav))
    assert broken["identity"].tolist() == ["nav = cash + marked positions"]
    cash = ledger.cash.copy()
    cash.loc[7, "interest"] += 100.0
    broken = reconcile(type(ledger)(ledger.orders, ledger.fills, ledger.positions, cash, ledger.nav))
    assert broken["date"].tolist() == [cash.loc[7, "date"]]


def test_booking_in_two_runs_gives_the_rows_of_one_run():
    _, weights, _, bars = market(seed=1)
    config = PaperConfig(capital=1e7, lot_size=10, costs=COSTS)
    whole = trade_sessions("s", PaperBroker(config), weights, bars, config)
    first = trade_sessions("s", PaperBroker(config), weights, bars[:43], config)
    # resume as the warehouse does: the last close's account (marks of unheld tickers: raw closes), open orders
    last = bars[42]
    held = first.positions[first.positions["date"] == last.date]
    marks = {**last.close.to_dict(), **dict(zip(held["ticker"], held["price"], strict=False))}
    account = Account(
        float(first.cash["cash"].iloc[-1]), dict(zip(held["ticker"], held["quantity"], strict=False)), marks
    )
    pending = [
        Order(o.order_id, "s", o.decision_date, o.ticker, o.quantity, o.reference_price, o.target_weight)
        for o in first.orders[first.orders["decision_date"] == last.date].itertuples()
    ]
    second = trade_sessions(
        "s", PaperBroker(config, account, pending), weights, bars[43:], config, float(first.nav["nav"].iloc[-1])
    )
    for name, frame in whole.tables().items():
        joined = pd.concat([first.tables()[name], second.tables()[name]], ignore_index=True)
        pd.testing.assert_frame_equal(joined, frame, check_exact=False, rtol=1e-12, obj=name)


def test_paper_nav_is_the_backtest_of_the_weights_it_executed():
    """Same mechanics: backtesting the weights the paper book held after each fill reproduces its NAV."""
    returns, weights, rates, bars = market(seed=2)
    config = PaperConfig(capital=1e9, lot_size=1, min_trade_value=0.0, costs=COSTS)
    ledger = trade_sessions("s", PaperBroker(config), weights, bars, config)
    nav = ledger.nav.set_index("date")
    # weights held after each session's fills, as fractions of the NAV after its costs
    fill_days = pd.DatetimeIndex(ledger.fills.loc[ledger.fills["quantity"] != 0, "date"].unique())
    held = ledger.positions.pivot(index="date", columns="ticker", values="value").reindex(nav.index).fillna(0.0)
    executed = held.loc[fill_days].div(nav.loc[fill_days, "nav"], axis=0)
    daily = run_backtest(executed, returns, costs=COSTS, execution="close", cash_rate=rates)
    # what remains is second order: the backtest prices a trade's costs on the equity before them, the paper
    # book on the shares it buys after them (12 bps x 12 bps per unit traded)
    gap = nav["daily_return"] - daily["net_return"]
    assert gap.abs().max() < 2 * COSTS.proportional**2
    assert_allclose(nav["nav"] / 1e9, daily["equity"], rtol=1e-5)
    assert_allclose(nav["costs"] / (nav["nav"] / (1 + nav["daily_return"])), daily["cost"], rtol=2e-3)


def test_paper_nav_tracks_the_backtest_of_the_decisions_within_the_one_session_drift():
    returns, weights, rates, bars = market(seed=3)
    config = PaperConfig(capital=1e9, lot_size=1, min_trade_value=0.0, costs=COSTS)
    nav = trade_sessions("s", PaperBroker(config), weights, bars, config).nav.set_index("date")
    daily = run_backtest(weights, returns, costs=COSTS, execution="next_close", cash_rate=rates)
    gap = nav["daily_return"] - daily["net_return"]
    # the paper book's weight at the fill is w (1 + r_i) / (1 + r_book) instead of w: per session the gap is
    # bounded by the turnover-weighted one-session return dispersion, and it has no drift
    assert gap.abs().max() < 2e-3 and abs(gap.mean()) < 2e-4
    assert_allclose(nav["nav"].iloc[-1] / 1e9, daily["equity"].iloc[-1], rtol=5e-3)
