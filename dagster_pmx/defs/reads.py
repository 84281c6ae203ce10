"""Reads of the warehouse that more than one domain's assets share."""

import pandas as pd

from dagster_pmx.resources import Warehouse


def forecasts_with_outcomes(
    warehouse: Warehouse, tables: list[str], columns: str, horizon: int | None = None, since=None
) -> pd.DataFrame:
    """``columns`` of the forecast ``tables`` (stacked), optionally at one horizon and from the
    origin ``since`` on, with the realised forward return as ``y_true`` (NULL until the target
    session exists)."""
    filters = [f"horizon = {int(horizon)}"] if horizon is not None else []
    if since is not None:
        filters.append(f"asof_date >= '{pd.Timestamp(since):%Y-%m-%d}'")
    where = (" where " + " and ".join(filters)) if filters else ""
    stacked = " union all ".join(f"select {columns} from {table}{where}" for table in tables)
    return warehouse.query(f"""
        with f as ({stacked})
        select f.*, r.fwd_return as y_true
        from f left join intermediate.int_forward_returns r
            on r.ticker = f.ticker and r.date = f.asof_date and r.horizon = f.horizon
    """)


def cash_rates(warehouse: Warehouse) -> pd.Series:
    """Per-session cash rate from intermediate.int_risk_free (sessions without a known rate: 0)."""
    rf = warehouse.query("select date, rf_daily from intermediate.int_risk_free order by date")
    return pd.Series(rf["rf_daily"].fillna(0.0).to_numpy(), index=pd.DatetimeIndex(rf["date"]))


def market_regimes(warehouse: Warehouse) -> pd.Series:
    """The HMM's most likely filtered market regime per session (0 calmest), from ml.regime_probabilities."""
    rows = warehouse.query(
        "select date, arg_max(regime, probability) as regime from ml.regime_probabilities group by date order by date"
    )
    return pd.Series(rows["regime"].to_numpy(), index=pd.DatetimeIndex(rows["date"]))


def sessions(warehouse: Warehouse) -> pd.DatetimeIndex:
    """The exchange sessions of the data (intermediate.int_sessions)."""
    return pd.DatetimeIndex(warehouse.query("select date from intermediate.int_sessions order by date")["date"])


def sessions_back(calendar: pd.DatetimeIndex, date, count: int) -> pd.Timestamp:
    """The session ``count`` sessions before ``date`` in ``calendar`` (its first session if there are fewer):
    where an incremental step starts reading so that its windows see what a rebuild's see."""
    return calendar[max(0, int(calendar.searchsorted(pd.Timestamp(date))) - count)]
