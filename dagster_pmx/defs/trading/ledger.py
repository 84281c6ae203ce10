"""The paper ledger in the warehouse: its tables, the state a broker resumes from, and appends.

Each table is append-only and keyed: an append that would book a session (strategy, date) or an
order id a second time is refused as a whole (a DuckLake has no primary keys, so :func:`append`
checks the keys inside its transaction). Every row carries the run that wrote it.
"""

from dataclasses import dataclass

import duckdb
import pandas as pd

from dagster_pmx.defs import schemas
from dagster_pmx.defs.backtest.engine import Market, cost_model
from dagster_pmx.defs.backtest.reads import impact_priced
from dagster_pmx.defs.trading import reads
from dagster_pmx.lake import claim, ensure, in_transaction
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.portfolio.allocation import BOND
from python_models.trading.broker import Account, Order, SessionBar
from python_models.trading.paper_broker import PaperConfig
from python_models.trading.paper_trading import Ledger

SCHEMAS = {
    "orders": schemas.PAPER_ORDERS,
    "fills": schemas.PAPER_FILLS,
    "positions": schemas.PAPER_POSITIONS,
    "cash": schemas.PAPER_CASH,
    "nav": schemas.PAPER_NAV,
}
KEYS = {
    "orders": "order_id",
    "fills": "order_id",
    "positions": "strategy, date, ticker",
    "cash": "strategy, date",
    "nav": "strategy, date",
}
#: First mark of the bond proxy, which has returns but no price.
BOND_BASE = 100.0


def table(name: str) -> str:
    return f"marts.paper_{name}"


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ledger's tables where they do not exist."""
    ensure(con, "create schema if not exists marts")
    for name, schema in SCHEMAS.items():
        columns = ", ".join(f"{c.name} {c.type}" for c in schema.columns)
        ensure(con, f"create table if not exists {table(name)} ({columns})")


def refuse_booked_keys(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Raise when ``incoming`` repeats a key of table ``name``, or one already booked there."""
    keys = KEYS[name]
    repeated = con.execute(
        f"select {keys} from incoming group by {keys} having count(*) > 1 "
        f"union all select {keys} from incoming join {table(name)} using ({keys}) limit 1"
    ).fetchall()
    if repeated:
        raise ValueError(
            f"the paper ledger refused a second booking of a session or order: {table(name)} already holds "
            f"({keys}) = {repeated[0]}"
        )


def paper_config(settings: PmxSettings, tickers, warehouse: Warehouse) -> PaperConfig:
    """The settings' paper book, with the backtester's costs (impact only where it can be priced: every
    ticker with a volume on every session of the history, so a ledger booked over several runs is charged
    as one booked at once)."""
    impact = settings.impact_coefficient > 0 and impact_priced(warehouse, [t for t in tickers if t != BOND])
    return PaperConfig(
        capital=settings.aum,
        lot_size=settings.paper_lot_size,
        min_trade_value=settings.paper_min_trade,
        participation_limit=settings.paper_participation,
        fill_at="next_open" if settings.execution == "next_open" else "next_close",
        costs=cost_model(settings, impact),
    )


def raw_closes(warehouse: Warehouse, market: Market, start: pd.Timestamp | None = None) -> pd.DataFrame:
    """Raw closes (sessions by tickers) and the bond proxy's level, first marks of new positions; the
    stocks' closes from ``start`` on when given (NaN before: a run marks only the sessions it books
    and the last one booked)."""
    rows, sleeve = reads.price_marks(warehouse, start)
    closes = rows.pivot(index="date", columns="ticker", values="close").reindex(market.returns.index)
    bond = pd.Series(sleeve["bond_return"].to_numpy(float), index=pd.DatetimeIndex(sleeve["date"]))
    # the level is compounded from the sleeve's first known return, so it does not depend on the start
    bond = bond.loc[bond.first_valid_index() :] if bond.notna().any() else bond.iloc[:0]
    closes[BOND] = (BOND_BASE * (1.0 + bond.fillna(0.0)).cumprod()).reindex(closes.index)
    return closes


def session_bars(market: Market, closes: pd.DataFrame, dates: pd.DatetimeIndex) -> list[SessionBar]:
    return [
        SessionBar(
            date=date,
            close=closes.loc[date].dropna(),
            ret=market.returns.loc[date],
            open_return=market.open_returns.loc[date],
            dollar_volume=market.dollar_volume.loc[date],
            volatility=market.volatility.loc[date],
            cash_rate=float(market.cash_rate.get(date, 0.0)),
        )
        for date in dates
    ]


@dataclass(frozen=True)
class State:
    """Where one strategy's ledger stands: nothing booked yet when ``last`` is None."""

    last: pd.Timestamp | None
    account: Account | None = None
    open_orders: tuple[Order, ...] = ()
    nav: float | None = None


def last_booked(booked: reads.BookedState | None) -> pd.Timestamp | None:
    """The last close a ledger booked (:func:`~dagster_pmx.defs.trading.reads.booked_state`); None if none."""
    return None if booked is None else pd.Timestamp(booked.nav["date"].iloc[0])


def state_of(strategy: str, booked: reads.BookedState | None, closes: pd.DataFrame) -> State:
    """The account at the last booked close and the orders placed then (they fill next session), from a
    ledger's stored state as :func:`~dagster_pmx.defs.trading.reads.booked_state` read it; its positions
    marked at ``closes`` where the ledger stored no price."""
    last = last_booked(booked)
    if booked is None or last is None:
        return State(last=None)
    nav, held, orders = booked
    marks = closes.loc[last].dropna().to_dict() if last in closes.index else {}
    marks.update(dict(zip(held["ticker"], held["price"], strict=False)))
    open_orders = tuple(
        Order(
            order_id=o.order_id,
            strategy=strategy,
            decision_date=pd.Timestamp(o.decision_date),
            ticker=o.ticker,
            quantity=float(o.quantity),
            reference_price=float(o.reference_price),
            target_weight=float(o.target_weight),
        )
        for o in orders.itertuples()
    )
    account = Account(
        cash=float(nav["cash"].iloc[0]),
        positions=dict(zip(held["ticker"], held["quantity"], strict=False)),
        marks=marks,
    )
    return State(last=last, account=account, open_orders=open_orders, nav=float(nav["nav"].iloc[0]))


def append(warehouse: Warehouse, ledgers: dict[str, Ledger], run_id: str) -> dict[str, int]:
    """Append every strategy's new rows in one transaction; a session already booked aborts it all."""
    counts = dict.fromkeys(SCHEMAS, 0)
    booked_at = pd.Timestamp.now(tz="UTC").tz_localize(None)
    with warehouse.connect() as con:
        ensure_tables(con)
        claimed = claim(con, "marts.paper_ledger")  # two writers booking at once: the later one re-checks

        def write() -> None:
            counts.update(dict.fromkeys(SCHEMAS, 0))  # a retried transaction counts afresh
            con.execute(claimed)
            for strategy, ledger in ledgers.items():
                for name, frame in ledger.tables().items():
                    if frame.empty:
                        continue
                    rows = frame.assign(strategy=strategy, run_id=run_id, booked_at=booked_at)
                    rows = rows[[c.name for c in SCHEMAS[name].columns]]
                    con.register("incoming", rows)
                    refuse_booked_keys(con, name)
                    con.execute(f"insert into {table(name)} select * from incoming")
                    con.unregister("incoming")
                    counts[name] += len(rows)

        in_transaction(con, write)
    return counts


def read_ledger(warehouse: Warehouse, strategy: str) -> Ledger:
    """One strategy's whole ledger, as :func:`python_models.trading.paper_trading.reconcile` reads it."""
    frames = reads.ledger_rows(warehouse, strategy, KEYS)  # dates as datetime64[us], as the reconciliation reads
    return Ledger(**frames)


def booked_strategies(warehouse: Warehouse) -> list[str]:
    with warehouse.connect() as con:
        ensure_tables(con)
    return reads.booked_strategies(warehouse)


def first_session(sessions: pd.DatetimeIndex, settings: PmxSettings) -> pd.Timestamp:
    """Where a new ledger starts: PMX_PAPER_START, else 63 sessions before the last session."""
    if settings.paper_start:
        start = pd.Timestamp(settings.paper_start)
        later = sessions[sessions >= start]
        if later.empty:
            raise ValueError(f"PMX_PAPER_START={settings.paper_start} is after the last session {sessions[-1].date()}")
        return later[0]
    return sessions[max(0, len(sessions) - 64)]
