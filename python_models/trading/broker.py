"""What pmx needs from a broker: the interface a paper broker implements today and a live
adapter (Interactive Brokers, Alpaca) could implement later.

The trading day, as :func:`python_models.trading.paper_trading.trade_sessions` drives it:

1. after the close of a decision session ``t``, pmx reads :meth:`Broker.account`, turns the
   target weights into share orders (:func:`python_models.trading.paper_trading.orders_for_targets`)
   and calls :meth:`Broker.submit`;
2. the broker executes them during the next session (at its open or its close);
3. after that session pmx calls :meth:`Broker.fills` with the session's :class:`SessionBar`
   and books what came back: fills, positions, cash and NAV.

Orders are day orders: what is not filled in the session after the decision is cancelled,
and the next decision targets the book afresh. A live adapter would implement ``submit``
with the broker's order API (market-on-close or market-on-open orders), ``fills`` with its
executions report for the session (the bar is then only the session's date and marks), and
``account`` with its positions and cash; nothing in pmx is faked to look like one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

#: Fill statuses: all of the order, part of it (the reason says why), or none of it.
FILLED, PARTIAL, CANCELLED = "filled", "partial", "cancelled"


@dataclass(frozen=True)
class Order:
    """An order to trade ``quantity`` shares (negative: sell) in the session after ``decision_date``.

    ``reference_price`` is the mark it was sized at and ``target_weight`` the weight it aims at.
    """

    order_id: str
    strategy: str
    decision_date: pd.Timestamp
    ticker: str
    quantity: float
    reference_price: float
    target_weight: float

    def __post_init__(self) -> None:
        if self.quantity == 0:
            raise ValueError(f"order {self.order_id}: quantity must be non-zero")
        if not self.reference_price > 0:
            raise ValueError(f"order {self.order_id}: reference_price must be positive, got {self.reference_price}")


@dataclass(frozen=True)
class Fill:
    """What became of one order in one session.

    ``value`` is ``quantity * price`` (negative for a sale); ``commission`` is commission plus
    half-spread and ``impact_cost`` the square-root impact, both in currency and both paid
    from cash. ``reason`` says why a fill is partial or cancelled.
    """

    order_id: str
    date: pd.Timestamp
    ticker: str
    quantity: float
    price: float
    commission: float
    impact_cost: float
    status: str
    reason: str = ""

    @property
    def value(self) -> float:
        return self.quantity * self.price


@dataclass(frozen=True)
class SessionBar:
    """One session of the market, per ticker.

    ``close`` is the raw close (a first mark for a ticker not yet held); ``ret`` the simple
    close-to-close total return and ``open_return`` the open over the previous close minus
    one (both from adjusted prices, so a held position earns its dividends); ``dollar_volume``
    and ``volatility`` (daily) price the impact and cap participation where known (NaN
    where not); ``cash_rate`` is the simple return of cash over the session.
    """

    date: pd.Timestamp
    close: pd.Series
    ret: pd.Series
    open_return: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    dollar_volume: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    volatility: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    cash_rate: float = 0.0


@dataclass(frozen=True)
class Account:
    """Cash, shares held and their marks after a session's close."""

    cash: float
    positions: dict[str, float]
    marks: dict[str, float]

    @property
    def positions_value(self) -> float:
        return float(sum(q * self.marks[t] for t, q in self.positions.items()))

    @property
    def nav(self) -> float:
        return self.cash + self.positions_value


class Broker(ABC):
    """The three calls pmx makes of a broker."""

    @abstractmethod
    def account(self) -> Account:
        """Cash, positions and marks as of the last session booked."""

    @abstractmethod
    def submit(self, orders: Sequence[Order]) -> None:
        """Accept orders for execution in the next session."""

    @abstractmethod
    def fills(self, bar: SessionBar) -> list[Fill]:
        """Execute (paper) or collect (live) the session's fills of the submitted orders, one per
        order, and bring the account to the session's close."""
