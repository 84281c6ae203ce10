"""A paper broker: simulated fills with the backtester's cost model, lots, cash and volume limits.

Marks. A held position is marked in total-return terms: each session its mark grows by the
session's close-to-close return (from adjusted prices), so dividends are reinvested where the
backtester reinvests them and a later back-adjustment of the price history cannot move a
booked mark. A ticker not held is marked at its raw close.

Fills. An order fills at the next session's close (``fill_at="next_close"``, the mark after
that session's return) or open (``"next_open"``, the previous mark grown by the overnight
return). Sales are filled before purchases. A fill is

* capped at ``participation_limit`` of the session's dollar volume where it is known
  (partial, reason ``participation``);
* cut to what the cash pays for, costs included (partial, reason ``cash``): the book never
  borrows;
* rounded toward zero to whole lots; nothing is filled for a ticker without a price in the
  session (cancelled, reason ``no_price``).

Costs are :class:`python_models.backtest.costs.CostModel`'s: commission plus half-spread on the
traded value, and square-root impact where dollar volume and volatility are known.
Cash earns the session's cash rate on what it held over the session (after an open fill,
before a close fill), as in the backtester.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from python_models.backtest.costs import CostModel
from python_models.trading.broker import CANCELLED, FILLED, PARTIAL, Account, Broker, Fill, Order, SessionBar

FILL_TIMES = ("next_close", "next_open")


@dataclass(frozen=True)
class PaperConfig:
    """Settings of the paper book.

    Parameters
    ----------
    capital : float
        Starting cash.
    lot_size : int
        Shares per lot; order and fill quantities are whole lots.
    min_trade_value : float
        Orders worth less than this are not sent (a full exit always is).
    participation_limit : float
        Largest fill as a fraction of the session's dollar volume, where it is known.
    fill_at : {"next_close", "next_open"}
        When an order placed at a decision's close is executed.
    costs : CostModel
        Commission, half-spread and impact, as the backtester charges them.
    """

    capital: float = 10_000_000.0
    lot_size: int = 1
    min_trade_value: float = 1_000.0
    participation_limit: float = 0.10
    fill_at: str = "next_close"
    costs: CostModel = field(default_factory=CostModel)

    def __post_init__(self) -> None:
        if not self.capital > 0:
            raise ValueError(f"capital must be positive, got {self.capital}")
        if int(self.lot_size) != self.lot_size or self.lot_size < 1:
            raise ValueError(f"lot_size must be a positive integer, got {self.lot_size}")
        if self.min_trade_value < 0:
            raise ValueError(f"min_trade_value must be non-negative, got {self.min_trade_value}")
        if not 0 < self.participation_limit <= 1:
            raise ValueError(f"participation_limit must lie in (0, 1], got {self.participation_limit}")
        if self.fill_at not in FILL_TIMES:
            raise ValueError(f"fill_at must be one of {FILL_TIMES}, got {self.fill_at!r}")

    def lots(self, quantity):
        """``quantity`` rounded toward zero to whole lots (a tolerance absorbs float noise)."""
        return np.trunc(np.asarray(quantity, float) / self.lot_size + 1e-9 * np.sign(quantity)) * self.lot_size


def _known(series: pd.Series, ticker: str) -> float:
    value = series.get(ticker, np.nan) if len(series) else np.nan
    return float(value) if value is not None and np.isfinite(value) else np.nan


class PaperBroker(Broker):
    """Simulated execution against session bars; its state is cash, shares, marks and open orders.

    Parameters
    ----------
    config : PaperConfig
    account : Account, optional
        State to resume from (the ledger's last booked session); a new book holds the
        capital in cash.
    open_orders : sequence of Order, optional
        Orders placed at the last booked close and not yet executed.
    """

    def __init__(self, config: PaperConfig, account: Account | None = None, open_orders: Sequence[Order] = ()) -> None:
        self.config = config
        account = account or Account(cash=config.capital, positions={}, marks={})
        self._cash = float(account.cash)
        self._positions = {t: float(q) for t, q in account.positions.items() if q != 0}
        self._marks = dict(account.marks)
        self._open: list[Order] = list(open_orders)

    def account(self) -> Account:
        return Account(cash=self._cash, positions=dict(self._positions), marks=dict(self._marks))

    def submit(self, orders: Sequence[Order]) -> None:
        self._open.extend(orders)

    def fills(self, bar: SessionBar) -> list[Fill]:
        previous = dict(self._marks)
        self._marks = self._next_marks(bar)
        fills: list[Fill] = []
        at_open = self.config.fill_at == "next_open"
        if at_open:
            fills += self._execute(bar, lambda t: previous.get(t, np.nan) * (1 + _known(bar.open_return, t)))
        self._cash += self._cash * bar.cash_rate
        if not at_open:
            fills += self._execute(bar, lambda t: self._marks.get(t, np.nan))
        self._open = []
        return fills

    def _next_marks(self, bar: SessionBar) -> dict[str, float]:
        marks = {}
        for ticker in set(self._positions) | set(bar.close.dropna().index):
            r = _known(bar.ret, ticker)
            if ticker in self._positions and ticker in self._marks:
                marks[ticker] = self._marks[ticker] * (1 + (0.0 if np.isnan(r) else r))
            else:
                marks[ticker] = _known(bar.close, ticker)
        return {t: m for t, m in marks.items() if np.isfinite(m) and m > 0}

    def _execute(self, bar: SessionBar, price_of) -> list[Fill]:
        orders = sorted(self._open, key=lambda o: (o.quantity > 0, o.ticker))  # sales first: they free cash
        if any(o.decision_date >= bar.date for o in orders):
            raise ValueError(f"an order decided on or after {bar.date.date()} cannot fill in that session")
        return [self._fill(o, bar, price_of(o.ticker)) for o in orders]

    def _fill(self, order: Order, bar: SessionBar, price: float) -> Fill:
        config, costs = self.config, self.config.costs

        def book(quantity: float, status: str, reason: str = "", commission=0.0, impact=0.0) -> Fill:
            return Fill(order.order_id, bar.date, order.ticker, quantity, price, commission, impact, status, reason)

        if not (np.isfinite(price) and price > 0):
            return book(0.0, CANCELLED, "no_price")
        quantity, reason = order.quantity, ""
        dollar_volume = _known(bar.dollar_volume, order.ticker)
        if np.isfinite(dollar_volume) and dollar_volume > 0:
            cap = config.lots(config.participation_limit * dollar_volume / price)
            if abs(quantity) > cap:
                quantity, reason = float(np.sign(quantity) * cap), "participation"
        held = self._positions.get(order.ticker, 0.0)
        quantity = max(quantity, -held) if quantity < 0 else quantity  # never sell short

        def charges(q: float) -> tuple[float, float]:
            value = abs(q) * price
            impact = 0.0
            sigma = _known(bar.volatility, order.ticker)
            if costs.impact_coefficient > 0 and np.isfinite(dollar_volume) and dollar_volume > 0 and np.isfinite(sigma):
                impact = float(costs.impact_rate(value / dollar_volume, sigma)) * value
            return costs.proportional * value, impact

        commission, impact = charges(quantity)
        if quantity > 0 and quantity * price + commission + impact > self._cash:
            # the impact rate at the full size bounds it at any smaller size
            rate = costs.proportional + (impact / (quantity * price) if quantity else 0.0)
            quantity, reason = float(config.lots(max(self._cash, 0.0) / (price * (1 + rate)))), "cash"
            commission, impact = charges(quantity)
        if quantity == 0:
            return book(0.0, CANCELLED, reason or "lot")
        self._cash -= quantity * price + commission + impact
        position = held + quantity
        if abs(position) < 1e-9:
            self._positions.pop(order.ticker, None)
        else:
            self._positions[order.ticker] = position
        status = FILLED if quantity == order.quantity else PARTIAL
        return book(quantity, status, reason if status == PARTIAL else "", commission, impact)
