"""Reads of the warehouse that more than one domain's assets share, as ibis expressions.

Filters, joins and aggregations run in DuckDB; only the result reaches pandas. Dates come back as
``datetime64[us]``, as DuckDB's own ``.df()`` returns them (:func:`frame`), so the library sees
the same frames whichever way a read is written.
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pandas as pd

from dagster_pmx.resources import Warehouse


def frame(expr: ir.Table) -> pd.DataFrame:
    """``expr`` executed, with the dtypes DuckDB's own ``.df()`` gives, so a read written in ibis hands the
    library the frame its SQL did: a DATE or TIMESTAMP as ``datetime64[us]`` (a TIMESTAMP_NS stays in
    nanoseconds), an integer or boolean column holding NULLs as pandas' nullable ``IntN`` / ``boolean``
    (Arrow gives ``float64`` and ``object``), a text column without a value as ``object`` holding None
    (Arrow gives pandas' ``str``), a DECIMAL as ``float64``.

    Through Arrow rather than ``expr.to_pandas()``: ibis's own conversion costs ~30-40 ms more on a wide
    frame (``marts.features``), which the daily refresh would pay on every run.
    """
    out = expr.to_pyarrow().to_pandas(date_as_object=False)
    for name, dtype in expr.schema().items():
        column = out[name]
        if dtype.is_date() or (dtype.is_timestamp() and dtype.scale != 9):
            if column.dtype != "datetime64[us]":
                out[name] = column.astype("datetime64[us]")
        elif dtype.is_integer() and pd.api.types.is_float_dtype(column.dtype):
            out[name] = column.astype(f"{'U' if dtype.is_unsigned_integer() else ''}Int{dtype.nbytes * 8}")
        elif dtype.is_boolean() and column.dtype == object:
            out[name] = column.astype("boolean")
        elif dtype.is_string() and not column.notna().any():
            # .df() gives a text column without a value (an empty result, all NULL) as object holding None
            out[name] = pd.Series([None] * len(column), index=column.index, dtype=object)
        elif dtype.is_decimal():
            out[name] = column.astype("float64")  # .df() gives DECIMAL as float64, Arrow as Decimal objects
    return out


def union_all(parts: Sequence[ibis.Table]) -> ibis.Table:
    """The rows of every part (UNION ALL), each column cast to the type that holds every part's, as SQL's
    UNION ALL does (TIMESTAMP and TIMESTAMP_NS give TIMESTAMP_NS); ibis itself refuses differing types."""
    if len(parts) == 1:
        return parts[0]
    columns = parts[0].columns
    common = {c: dt.highest_precedence([p.schema()[c] for p in parts]) for c in columns}
    return ibis.union(*[p.select(*[p[c].cast(common[c]).name(c) for c in columns]) for p in parts])


def forecasts_with_outcomes(
    warehouse: Warehouse,
    tables: Sequence[str],
    columns: str | Sequence[str],
    horizon: int | None = None,
    since=None,
    tickers: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``columns`` of the forecast ``tables`` (``schema.table``, stacked), optionally at one horizon,
    from the origin ``since`` on and of ``tickers`` and ``models`` only, with the realised forward return
    as ``y_true`` (NULL until the target session exists). ``columns`` is a list of names or one
    comma-separated string."""
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",")]
    with warehouse.ibis() as db:
        parts = [t.select(*columns) for t in _forecast_tables(db, tables, horizon, since, tickers, models)]
        forecasts = union_all(parts)
        # the forecasts' own filters on the outcomes' side too: DuckDB does not carry them across a left
        # join, and every outcome would be read for the few origins a refresh asks for
        realised = _filtered(db.table("int_forward_returns", database="intermediate"), "date", horizon, since, tickers)
        joined = forecasts.left_join(
            realised,
            [
                forecasts.ticker == realised.ticker,
                forecasts.asof_date == realised.date,
                forecasts.horizon == realised.horizon,
            ],
        ).select(*[forecasts[c] for c in columns], y_true=realised.fwd_return)
        return frame(joined)


def forecast_models(warehouse: Warehouse, tables: Sequence[str], horizon: int, since=None) -> list[str]:
    """The models with forecasts at ``horizon`` from the origin ``since`` on in any of ``tables``, sorted."""
    with warehouse.ibis() as db:
        parts = [t.select("model").distinct() for t in _forecast_tables(db, tables, horizon, since)]
        return sorted(frame(union_all(parts).distinct())["model"].tolist())


def first_origin(warehouse: Warehouse, tables: Sequence[str], horizon: int) -> pd.Timestamp:
    """The earliest origin with a forecast at ``horizon`` in any of ``tables`` (the first decision any
    strategy makes: where the backtests' market starts)."""
    with warehouse.ibis() as db:
        parts = [t.aggregate(first=t.asof_date.min()) for t in _forecast_tables(db, tables, horizon, None)]
        first = frame(union_all(parts))["first"].min()
    if pd.isna(first):
        raise ValueError(f"no forecasts at horizon {horizon} in {', '.join(tables)}")
    return pd.Timestamp(first)


def _filtered(t: ir.Table, date: str, horizon: int | None, since, tickers: Sequence[str] | None) -> ir.Table:
    """``t`` at ``horizon``, with ``date`` from ``since`` on, of ``tickers`` (each filter only where given)."""
    if horizon is not None:
        t = t.filter(t.horizon == int(horizon))
    if since is not None:
        t = t.filter(t[date] >= pd.Timestamp(since).date())
    if tickers is not None:
        t = t.filter(t.ticker.isin(list(tickers)))
    return t


def _forecast_tables(
    db: ibis.BaseBackend,
    tables: Sequence[str],
    horizon: int | None = None,
    since=None,
    tickers: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
) -> list[ir.Table]:
    """Each forecast table of ``tables`` (``schema.table``) at ``horizon``, from the origin ``since`` on,
    of ``tickers`` and ``models`` (each filter only where given)."""
    out = []
    for name in tables:
        schema, table = name.split(".")
        t = _filtered(db.table(table, database=schema), "asof_date", horizon, since, tickers)
        if models is not None:
            t = t.filter(t.model.isin(list(models)))
        out.append(t)
    return out


def tickers_of(warehouse: Warehouse, table: str) -> list[str]:
    """The distinct tickers of ``schema.table``, sorted: what a step that works in ticker batches splits."""
    schema, name = table.split(".")
    with warehouse.ibis() as db:
        t = db.table(name, database=schema)
        return sorted(frame(t.select("ticker").distinct())["ticker"].tolist())


def ticker_batches(tickers: Sequence[str], size: int) -> list[list[str]]:
    """``tickers`` in consecutive batches of ``size`` (the ``ticker_batch`` setting); the last may be shorter."""
    if size < 1:
        raise ValueError(f"a ticker batch holds at least one ticker, got {size}")
    return [list(tickers[i : i + size]) for i in range(0, len(tickers), size)]


def cash_rates(warehouse: Warehouse) -> pd.Series:
    """Per-session cash rate from intermediate.int_risk_free (sessions without a known rate: 0)."""
    with warehouse.ibis() as db:
        t = db.table("int_risk_free", database="intermediate")
        rf = frame(t.select("date", "rf_daily").order_by("date"))
    return pd.Series(rf["rf_daily"].fillna(0.0).to_numpy(), index=pd.DatetimeIndex(rf["date"]))


def cash_rate_known(warehouse: Warehouse) -> pd.Series:
    """Per session, whether the cash rate is known (intermediate.int_risk_free.rf_known): where it is not, cash
    earned 0 in the backtests (:func:`cash_rates`), and the rows say so."""
    with warehouse.ibis() as db:
        t = db.table("int_risk_free", database="intermediate")
        rf = frame(t.select("date", "rf_known").order_by("date"))
    return pd.Series(rf["rf_known"].astype(bool).to_numpy(), index=pd.DatetimeIndex(rf["date"]))


def market_regimes(warehouse: Warehouse) -> pd.Series:
    """The HMM's most likely filtered market regime per session (0 calmest), from ml.regime_probabilities."""
    with warehouse.ibis() as db:
        t = db.table("regime_probabilities", database="ml")
        rows = frame(t.group_by("date").aggregate(regime=t.regime.argmax(t.probability)).order_by("date"))
    return pd.Series(rows["regime"].to_numpy(), index=pd.DatetimeIndex(rows["date"]))


def sessions(warehouse: Warehouse) -> pd.DatetimeIndex:
    """The exchange sessions of the data (intermediate.int_sessions)."""
    with warehouse.ibis() as db:
        t = db.table("int_sessions", database="intermediate")
        return pd.DatetimeIndex(frame(t.select("date").order_by("date"))["date"])


def last_date(warehouse: Warehouse, table: str, exclude_ticker: str | None = None) -> pd.Timestamp | None:
    """The latest ``date`` of ``schema.table`` (leaving out one ticker, e.g. the benchmark); None when empty."""
    schema, name = table.split(".")
    with warehouse.ibis() as db:
        t = db.table(name, database=schema)
        if exclude_ticker is not None:
            t = t.filter(t.ticker != exclude_ticker)
        value = t.date.max().execute()
    return None if value is None or pd.isna(value) else pd.Timestamp(value)
