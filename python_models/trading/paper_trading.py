"""Paper trading: target weights to share orders, and the daily ledger a broker's sessions book.

:func:`trade_sessions` drives any :class:`python_models.trading.broker.Broker` one session at a time:
the fills of the orders placed at the previous decision, the close's marks and NAV, then
(on a decision session) new orders. It returns the ledger's rows; it knows nothing of where
they are stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from python_models.trading.broker import Account, Broker, Order, SessionBar
from python_models.trading.paper_broker import PaperConfig

ORDER_COLUMNS = ["order_id", "decision_date", "ticker", "quantity", "reference_price", "target_weight"]
FILL_COLUMNS = [
    "order_id",
    "date",
    "ticker",
    "quantity",
    "price",
    "value",
    "commission",
    "impact_cost",
    "status",
    "reason",
]
POSITION_COLUMNS = ["date", "ticker", "quantity", "price", "value"]
CASH_COLUMNS = ["date", "opening_cash", "interest", "purchases", "sales", "costs", "cash"]
NAV_COLUMNS = ["date", "cash", "positions_value", "nav", "daily_return", "costs", "turnover"]


def orders_for_targets(
    strategy: str,
    date: pd.Timestamp,
    weights: pd.Series,
    account: Account,
    config: PaperConfig,
) -> list[Order]:
    """Share orders that move ``account`` to ``weights`` of its NAV at the close of ``date``.

    Target shares are ``weight * NAV / mark`` rounded toward zero to lots; an order is the
    difference from the shares held. Orders worth less than ``min_trade_value`` are dropped,
    except a sale of the whole position. If the purchases would cost more than the cash the
    sales free (costs included, at the marks), every purchase is scaled down alike.
    Tickers without a mark cannot be sized and get no order.
    """
    if not np.all(np.isfinite(weights.to_numpy(float))) or (weights < 0).any():
        raise ValueError(f"{strategy} {date.date()}: target weights must be finite and non-negative")
    nav = account.nav
    if not nav > 0:
        raise ValueError(f"{strategy} {date.date()}: NAV is {nav}, nothing to allocate")
    wanted = weights[weights != 0]
    deltas: dict[str, float] = {}
    for ticker in sorted(set(wanted.index) | set(account.positions)):
        mark = account.marks.get(ticker, np.nan)
        if not (np.isfinite(mark) and mark > 0):
            continue
        target = float(config.lots(wanted.get(ticker, 0.0) * nav / mark))
        delta = target - account.positions.get(ticker, 0.0)
        exit_all = target == 0 and delta != 0
        if delta != 0 and (exit_all or abs(delta) * mark >= config.min_trade_value):
            deltas[ticker] = delta
    rate = config.costs.proportional
    sales = sum(-q * account.marks[t] * (1 - rate) for t, q in deltas.items() if q < 0)
    buys = sum(q * account.marks[t] * (1 + rate) for t, q in deltas.items() if q > 0)
    if buys > account.cash + sales > 0:
        scale = (account.cash + sales) / buys
        for ticker, q in list(deltas.items()):
            if q > 0:
                deltas[ticker] = float(config.lots(q * scale))
    return [
        Order(
            order_id=f"{strategy}:{date:%Y-%m-%d}:{ticker}",
            strategy=strategy,
            decision_date=date,
            ticker=ticker,
            quantity=q,
            reference_price=account.marks[ticker],
            target_weight=float(wanted.get(ticker, 0.0)),
        )
        for ticker, q in deltas.items()
        if q != 0
    ]


@dataclass(frozen=True)
class Ledger:
    """The rows one stretch of sessions adds to the ledger (columns: the ``*_COLUMNS`` lists)."""

    orders: pd.DataFrame
    fills: pd.DataFrame
    positions: pd.DataFrame
    cash: pd.DataFrame
    nav: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "orders": self.orders,
            "fills": self.fills,
            "positions": self.positions,
            "cash": self.cash,
            "nav": self.nav,
        }


def trade_sessions(
    strategy: str,
    broker: Broker,
    targets: pd.DataFrame,
    bars: Iterable[SessionBar],
    config: PaperConfig,
    previous_nav: float | None = None,
) -> Ledger:
    """Book ``bars`` in order: fills, then the close's NAV, then orders where ``targets`` has a row.

    Parameters
    ----------
    strategy : str
        Name the orders are placed under.
    broker : Broker
        Holds the account; already resumed where a ledger exists.
    targets : pandas.DataFrame
        Target weights (decision dates by tickers; CASH implicit) decided at each date's close.
    bars : iterable of SessionBar
        The sessions to book, in date order, none booked before.
    config : PaperConfig
        Lots, minimum trade and costs.
    previous_nav : float, optional
        NAV at the last booked close, for the first session's daily return (``capital`` when
        the book is new).
    """
    orders, fills, positions, cash, navs = [], [], [], [], []
    last_nav = config.capital if previous_nav is None else previous_nav
    for bar in bars:
        opening = broker.account().cash
        session_fills = broker.fills(bar)
        account = broker.account()
        fills += [(f.order_id, bar.date, f.ticker, f.quantity, f.price, f.value, f.commission, f.impact_cost,
                   f.status, f.reason) for f in session_fills]  # fmt: skip
        values = [f.value for f in session_fills]
        session_costs = sum(f.commission + f.impact_cost for f in session_fills)
        purchases, sales = sum(v for v in values if v > 0), -sum(v for v in values if v < 0)
        interest = account.cash - opening + sum(values) + session_costs
        cash.append((bar.date, opening, interest, purchases, sales, session_costs, account.cash))
        for ticker, quantity in sorted(account.positions.items()):
            mark = account.marks[ticker]
            positions.append((bar.date, ticker, quantity, mark, quantity * mark))
        nav = account.nav
        navs.append((bar.date, account.cash, account.positions_value, nav, nav / last_nav - 1, session_costs,
                     (purchases + sales) / last_nav))  # fmt: skip
        last_nav = nav
        if bar.date in targets.index:
            placed = orders_for_targets(strategy, bar.date, targets.loc[bar.date], account, config)
            broker.submit(placed)
            orders += [(o.order_id, o.decision_date, o.ticker, o.quantity, o.reference_price, o.target_weight)
                       for o in placed]  # fmt: skip
    return Ledger(
        orders=pd.DataFrame(orders, columns=ORDER_COLUMNS),
        fills=pd.DataFrame(fills, columns=FILL_COLUMNS),
        positions=pd.DataFrame(positions, columns=POSITION_COLUMNS),
        cash=pd.DataFrame(cash, columns=CASH_COLUMNS),
        nav=pd.DataFrame(navs, columns=NAV_COLUMNS),
    )


def reconcile(ledger: Ledger, tolerance: float = 1e-6) -> pd.DataFrame:
    """Sessions of one strategy's ledger whose books do not agree.

    Three identities, each within ``tolerance`` of the NAV: NAV = cash + positions marked at
    the close; positions = the cumulative sum of filled quantities (the ledger from its first
    session); closing cash = opening cash + interest - purchases + sales - costs, and it is
    the next session's opening cash. Returns ``date``, ``ticker`` (where one is concerned)
    and ``identity`` for each break; empty when the ledger reconciles.
    """
    nav = ledger.nav.sort_values("date").set_index("date")
    scale = tolerance * nav["nav"].abs().clip(lower=1.0)
    marked = ledger.positions.groupby("date")["value"].sum().reindex(nav.index, fill_value=0.0)
    bad_nav = ((nav["nav"] - nav["cash"] - marked).abs() > scale) | ((nav["positions_value"] - marked).abs() > scale)

    filled = ledger.fills.pivot_table(index="date", columns="ticker", values="quantity", aggfunc="sum")
    expected = filled.reindex(nav.index).fillna(0.0).cumsum()
    held = ledger.positions.pivot_table(index="date", columns="ticker", values="quantity", aggfunc="sum")
    held = held.reindex(index=nav.index, columns=expected.columns.union(held.columns)).fillna(0.0)
    diff = (held - expected.reindex(columns=held.columns, fill_value=0.0)).abs() > 1e-6
    bad_positions = diff.stack()
    bad_positions = bad_positions[bad_positions].reset_index()[["date", "ticker"]]

    cash = ledger.cash.sort_values("date").set_index("date").reindex(nav.index)
    flow = cash["opening_cash"] + cash["interest"] - cash["purchases"] + cash["sales"] - cash["costs"] - cash["cash"]
    chain = (cash["opening_cash"] - cash["cash"].shift(1)).fillna(0.0)
    bad_cash = (flow.abs() > scale) | (chain.abs() > scale) | cash["cash"].isna()
    return pd.concat(
        [
            pd.DataFrame({"date": nav.index[bad_nav.to_numpy()], "identity": "nav = cash + marked positions"}),
            bad_positions.assign(identity="positions = cumulative fills"),
            pd.DataFrame(
                {
                    "date": nav.index[bad_cash.to_numpy()],
                    "identity": "cash = opening + interest - purchases + sales - costs",
                }
            ),
        ],
        ignore_index=True,
    ).reindex(columns=["date", "ticker", "identity"])
