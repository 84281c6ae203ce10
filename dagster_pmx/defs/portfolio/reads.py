"""What the portfolio assets read from the warehouse, as ibis expressions.

Filters and aggregations run in DuckDB and only their result reaches pandas; :func:`~dagster_pmx.defs.reads.frame`
gives the dtypes DuckDB's ``.df()`` gave, so the library receives the frames it received when
these reads were SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import pandas as pd

from dagster_pmx.defs.reads import frame
from dagster_pmx.resources import Warehouse

#: The tables the allocations asset writes: a resumed run extends all of them.
ALLOCATION_TABLES = ("marts.allocations", "marts.drawdown_control", "ml.strategy_decisions")


def resume_date(warehouse: Warehouse) -> pd.Timestamp | None:
    """The last session the stored allocations decided (the drawdown control's last state), or None
    when a table is missing or empty: the daily refresh then rebuilds them."""
    since = warehouse.last("marts.drawdown_control")
    return since if since is not None and set(ALLOCATION_TABLES) <= warehouse.tables() else None


def macro_series(warehouse: Warehouse, series: tuple[str, ...]) -> dict[str, pd.Series]:
    """Each of the staged macro ``series`` that has values, by date."""
    with warehouse.ibis() as db:
        t = db.table("stg_macro", database="staging")
        rows = frame(t.filter(t.series_id.isin(list(series))).select("series_id", "date", "value").order_by("date"))
    return {
        k: pd.Series(g["value"].to_numpy(), index=pd.DatetimeIndex(g["date"])) for k, g in rows.groupby("series_id")
    }


@dataclass(frozen=True)
class SignalInputs:
    """What the books are decided from: ``signals`` (see :func:`signal_inputs`), the decision grid
    (every date of marts.signals), and the first decision date and the tickers of any strategy
    over the whole history (an extension lays the same grid on the same universe)."""

    signals: pd.DataFrame
    grid: pd.DatetimeIndex
    first: pd.Timestamp
    tickers: set[str]


def signal_inputs(warehouse: Warehouse, since: pd.Timestamp | None) -> SignalInputs | None:
    """The decisions' inputs after ``since``; None when there is no signal after it.

    ``signals`` has ``strategy, ticker, date, expected_return, forecast_std, confidence,
    tradable`` per decision: the governed signals (a row that may not trade expects 0), and
    every model's own forecasts at the signal horizon (no confidence, no gate). One ibis session
    for the three queries: each table is looked up once.
    """
    with warehouse.ibis() as db:
        s, f = db.table("signals", database="marts"), db.table("forecasts", database="marts")
        models = f.filter(f.horizon == s.horizon.max().as_scalar())  # the horizon the signals are at
        governed, own = s, models
        if since is not None:
            governed, own = s.filter(s.date > pd.Timestamp(since)), models.filter(f.asof_date > pd.Timestamp(since))
        governed = governed.select(
            strategy=ibis.literal("governed"),
            ticker=s.ticker,
            date=s.date,
            expected_return=ibis.ifelse(s.tradable, s.expected_return, 0),
            forecast_std=s.forecast_std,
            confidence=s.confidence,
            tradable=s.tradable,
        )
        own = own.select(
            strategy=f.model,
            ticker=f.ticker,
            date=f.asof_date,
            expected_return=f.y_pred,
            forecast_std=f.y_std,
            confidence=ibis.null("float64"),
            tradable=ibis.null("boolean"),
        )
        signals = frame(governed.union(own, distinct=False))
        if signals.empty:
            return None
        grid = pd.DatetimeIndex(frame(s.select("date").distinct().order_by("date"))["date"])
        both = s.select("ticker", "date").union(models.select("ticker", date=f.asof_date), distinct=False)
        universe = frame(both.aggregate(first=both.date.min(), tickers=both.ticker.collect(distinct=True)))
    return SignalInputs(signals, grid, pd.Timestamp(universe["first"].iloc[0]), set(universe["tickers"].iloc[0]))


def regime_probabilities(warehouse: Warehouse) -> pd.DataFrame:
    """The HMM's filtered market-regime probabilities, sessions by regimes."""
    with warehouse.ibis() as db:
        t = db.table("regime_probabilities", database="ml")
        probs = frame(t.select("date", "regime", "probability"))
    return probs.pivot(index="date", columns="regime", values="probability").sort_index()


def market_volatility(warehouse: Warehouse) -> pd.Series:
    """The benchmark's annualised 21-session volatility per session, as dbt computes it for the features."""
    with warehouse.ibis() as db:
        t = db.table("int_market", database="intermediate")
        vol = frame(t.select("date", "market_vol_21"))
    return pd.Series(vol["market_vol_21"].to_numpy(), index=pd.DatetimeIndex(vol["date"]))


def bond_shares(warehouse: Warehouse) -> pd.Series:
    """The safe sleeve's share in the bond proxy per session (ml.safe_sleeve)."""
    with warehouse.ibis() as db:
        t = db.table("safe_sleeve", database="ml")
        sleeve = frame(t.select("date", "bond_share"))
    return pd.Series(sleeve["bond_share"].to_numpy(), index=pd.DatetimeIndex(sleeve["date"]))


def stored_decisions(warehouse: Warehouse) -> pd.DataFrame:
    """The stored ``ml.strategy_decisions`` rows (``strategy, date, ticker, weight``)."""
    with warehouse.ibis() as db:
        t = db.table("strategy_decisions", database="ml")
        return frame(t.select("strategy", "date", "ticker", "weight"))


def stored_scales(warehouse: Warehouse) -> pd.DataFrame:
    """The stored drawdown control's scale per session (rows) and strategy (columns)."""
    with warehouse.ibis() as db:
        t = db.table("drawdown_control", database="marts")
        scales = frame(t.select("strategy", "date", "scale"))
    return scales.pivot(index="date", columns="strategy", values="scale")
