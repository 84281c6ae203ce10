"""What the paper-trading assets read from the warehouse, as ibis expressions.

Filters and aggregations run in DuckDB and only their result reaches pandas; :func:`~dagster_pmx.defs.reads.frame`
gives the dtypes DuckDB's ``.df()`` gave (dates as ``datetime64[us]``), so the broker and the reconciliation
receive the frames they did when these reads were SQL. The ledger's tables are ``marts.paper_<name>``
(:func:`dagster_pmx.defs.trading.ledger.table`); its writes (the tables' DDL, the appends in one transaction)
stay SQL in ``ledger.py``. Each function opens one ibis connection for everything it reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import ibis
import ibis.expr.types as ir
import pandas as pd

from dagster_pmx.defs.reads import frame
from dagster_pmx.resources import Warehouse


def _paper(db: ibis.BaseBackend, name: str) -> ir.Table:
    return db.table(f"paper_{name}", database="marts")


def price_marks(warehouse: Warehouse, start: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``ticker, date, close`` of every priced row of intermediate.int_returns (raw closes; from ``start`` on
    when given), and ``date, bond_return`` of ml.safe_sleeve by date (the bond proxy's returns, all of them)."""
    with warehouse.ibis() as db:
        r = db.table("int_returns", database="intermediate")
        priced = r.filter(r.close.notnull())
        if start is not None:
            priced = priced.filter(r.date >= pd.Timestamp(start))
        closes = frame(priced.select("ticker", "date", "close"))
        s = db.table("safe_sleeve", database="ml")
        sleeve = frame(s.select("date", "bond_return").order_by("date"))
    return closes, sleeve


class BookedState(NamedTuple):
    """One strategy's ledger at its last booked close: ``nav`` (one row: ``date, nav, cash``), the
    positions then held (``ticker, quantity, price``) and the orders placed then (``order_id,
    decision_date, ticker, quantity, reference_price, target_weight`` by ticker)."""

    nav: pd.DataFrame
    held: pd.DataFrame
    orders: pd.DataFrame


def booked_state(warehouse: Warehouse, strategy: str) -> BookedState | None:
    """Where ``strategy``'s ledger stands; None when it has booked nothing."""
    with warehouse.ibis() as db:
        n = _paper(db, "nav")
        nav = frame(n.filter(n.strategy == strategy).order_by(ibis.desc("date")).limit(1).select("date", "nav", "cash"))
        if nav.empty:
            return None
        last = pd.Timestamp(nav["date"].iloc[0])
        p = _paper(db, "positions")
        held = frame(p.filter(p.strategy == strategy, p.date == last).select("ticker", "quantity", "price"))
        o = _paper(db, "orders")
        orders = frame(
            o.filter(o.strategy == strategy, o.decision_date == last)
            .select("order_id", "decision_date", "ticker", "quantity", "reference_price", "target_weight")
            .order_by("ticker")
        )
    return BookedState(nav, held, orders)


def ledger_rows(warehouse: Warehouse, strategy: str, keys: Mapping[str, str]) -> dict[str, pd.DataFrame]:
    """Every row of ``strategy`` in each ledger table named in ``keys``, ordered by its key there
    (comma-separated columns, as :data:`dagster_pmx.defs.trading.ledger.KEYS` gives them)."""
    with warehouse.ibis() as db:
        rows = {}
        for name, key in keys.items():
            t = _paper(db, name)
            rows[name] = frame(t.filter(t.strategy == strategy).order_by([c.strip() for c in key.split(",")]))
    return rows


def booked_strategies(warehouse: Warehouse) -> list[str]:
    """The strategies marts.paper_nav holds, sorted."""
    with warehouse.ibis() as db:
        t = _paper(db, "nav")
        return frame(t.select("strategy").distinct().order_by("strategy"))["strategy"].tolist()


def ledger_summary(warehouse: Warehouse, names: Iterable[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """``strategy, date, nav`` of marts.paper_nav by date, and the row count of each ledger table in ``names``."""
    with warehouse.ibis() as db:
        t = _paper(db, "nav")
        nav = frame(t.select("strategy", "date", "nav").order_by("date"))
        counts = ibis.union(
            *[_paper(db, name).aggregate(name=ibis.literal(name), n=ibis._.count()) for name in names], distinct=False
        )
        rows = frame(counts)
    return nav, {name: int(n) for name, n in zip(rows["name"], rows["n"], strict=True)}
