"""The forecasting and validation assets' reads of the warehouse, as ibis expressions.

Filters, joins and aggregations run in DuckDB; only what a step needs reaches pandas, with the
dtypes DuckDB's own ``.df()`` gives (dates as ``datetime64[us]``, an integer column with NULLs as a
nullable integer), so the models receive the frames they did when these reads were SQL. Each
function opens one ibis connection for everything it reads: the cost of ibis is per read.
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.types as ir
import pandas as pd

from dagster_pmx.defs.reads import frame
from dagster_pmx.resources import Warehouse


def _latest(column: ir.Column) -> pd.Timestamp | None:
    """The largest value of a date or timestamp column; None for an empty table."""
    value = column.max().to_pandas()
    return None if value is None or pd.isna(value) else pd.Timestamp(value)


def model_inputs(
    warehouse: Warehouse,
    benchmark: str,
    tickers: Sequence[str],
    since: pd.Timestamp | None,
    features: bool,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The universe's log returns (``ticker, date, log_return``, the benchmark left out, ``tickers``
    only when given) from ``since`` on, by ticker and date; and, with ``features``, the
    ``marts.features`` rows of the same tickers and sessions (without ``refreshed_at``), by date and
    ticker."""
    with warehouse.ibis() as db:

        def universe(t: ir.Table, order: Sequence[str] = ("ticker", "date")) -> ir.Table:
            t = t.filter(t.ticker != benchmark)
            if tickers:
                t = t.filter(t.ticker.isin(list(tickers)))
            if since is not None:
                t = t.filter(t.date >= pd.Timestamp(since).date())
            return t.order_by(list(order))

        r = db.table("int_returns", database="intermediate")
        returns = frame(universe(r.filter(r.log_return.notnull())).select("ticker", "date", "log_return"))
        if not features:
            return returns, None
        # in the (date, ticker) order the pooled models keep them in: not sorted again in pandas
        features_table = db.table("features", database="marts").drop("refreshed_at")
        return returns, frame(universe(features_table, order=("date", "ticker")))


def forecast_state(warehouse: Warehouse) -> tuple[pd.DataFrame, list[str]]:
    """The last origin forecast per (model, ticker) in ``ml.base_forecasts`` (``model, ticker, last``),
    and the table's columns (the order new rows are written in)."""
    with warehouse.ibis() as db:
        t = db.table("base_forecasts", database="ml")
        last = frame(t.group_by(["model", "ticker"]).aggregate(last=t.asof_date.max()))
        return last, list(t.columns)


def current_fits(warehouse: Warehouse, models: Sequence[str]) -> pd.DataFrame:
    """The fit stored last of every (model, ticker) of ``models`` in ``ml.model_fits``: ``model, ticker,
    train_start, train_end, converged, fit`` (the pickle)."""
    with warehouse.ibis() as db:
        t = db.table("model_fits", database="ml")
        newest = ibis.row_number().over(group_by=[t.model, t.ticker], order_by=[t.fitted_at.desc(), t.train_end.desc()])
        ranked = t.filter(t.model.isin(list(models))).mutate(newest=newest)
        return frame(
            ranked.filter(ranked.newest == 0).select("model", "ticker", "train_start", "train_end", "converged", "fit")
        )


def benchmark_returns(
    warehouse: Warehouse, benchmark: str, regimes_stored: bool
) -> tuple[pd.Series, pd.Timestamp | None]:
    """The benchmark's daily log returns by date, and (when ``regimes_stored``) the last session of
    ``ml.regime_probabilities`` (None when it is empty)."""
    with warehouse.ibis() as db:
        t = db.table("int_returns", database="intermediate")
        rows = frame(
            t.filter(t.ticker == benchmark, t.log_return.notnull()).select("date", "log_return").order_by("date")
        )
        last = _latest(db.table("regime_probabilities", database="ml").date) if regimes_stored else None
    return pd.Series(rows["log_return"].to_numpy(float), index=pd.DatetimeIndex(rows["date"])), last


def latest_regimes(warehouse: Warehouse) -> pd.DataFrame:
    """The rows of ``ml.regime_probabilities`` on its last session."""
    with warehouse.ibis() as db:
        t = db.table("regime_probabilities", database="ml")
        return frame(t.filter(t.date == t.date.max()))


def ensemble_inputs(warehouse: Warehouse, ensembles_stored: bool) -> tuple[pd.DataFrame, pd.Timestamp | None]:
    """The HMM's filtered regime probabilities (``date, regime, probability``) and (when
    ``ensembles_stored``) the last origin of ``ml.ensemble_forecasts`` (None when it is empty)."""
    with warehouse.ibis() as db:
        regimes = frame(db.table("regime_probabilities", database="ml").select("date", "regime", "probability"))
        last = _latest(db.table("ensemble_forecasts", database="ml").asof_date) if ensembles_stored else None
    return regimes, last


def scored_forecasts(warehouse: Warehouse, tickers: Sequence[str] | None = None) -> pd.DataFrame:
    """``model, ticker, asof_date, horizon, y_pred, y_true`` of every row of ``marts.forecasts`` (of
    ``tickers`` only, when given)."""
    with warehouse.ibis() as db:
        t = db.table("forecasts", database="marts")
        if tickers is not None:
            t = t.filter(t.ticker.isin(list(tickers)))
        return frame(t.select("model", "ticker", "asof_date", "horizon", "y_pred", "y_true"))


def realised_forecasts(warehouse: Warehouse, tickers: Sequence[str]) -> pd.DataFrame:
    """``model, ticker, asof_date, horizon, y_pred, y_true`` of the realised rows of ``marts.forecasts``
    of ``tickers``: what the statistical validation pools, a batch of tickers at a time."""
    with warehouse.ibis() as db:
        f = db.table("forecasts", database="marts")
        rows = f.filter(f.y_true.notnull() & f.ticker.isin(list(tickers)))
        return frame(rows.select("model", "ticker", "asof_date", "horizon", "y_pred", "y_true"))


def validation_inputs(warehouse: Warehouse, baseline: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the statistical validation reads beside the forecasts (:func:`realised_forecasts`).

    Returns
    -------
    daily : pandas.DataFrame
        ``strategy, date, net_return, excess_return`` of ``marts.backtest_daily``, by date.
    governed : pandas.DataFrame
        ``model, ticker, asof_date, y_pred, y_true``: the tradable governed signals' realised forecasts
        (model ``governed``) and, as their control, the ``baseline`` model's forecasts on exactly those
        rows (model ``random_walk@governed``).
    """
    with warehouse.ibis() as db:
        f = db.table("forecasts", database="marts")
        b = db.table("backtest_daily", database="marts")
        daily = frame(b.select("strategy", "date", "net_return", "excess_return").order_by("date"))
        s = db.table("signals", database="marts")
        traded = s.filter(s.tradable)

        def on_signals(model: ir.StringValue, name: str, prediction: str) -> ir.Table:
            rows = traded.join(
                f,
                [f.model == model, f.ticker == traded.ticker, f.asof_date == traded.date, f.horizon == traded.horizon],
            ).filter(f.y_true.notnull())
            y_pred = traded.expected_return if prediction == "signal" else f.y_pred
            return rows.select(
                model=ibis.literal(name),
                ticker=traded.ticker,
                asof_date=traded.date,
                y_pred=y_pred,
                y_true=f.y_true,
            )

        governed = on_signals(traded.model, "governed", "signal").union(
            on_signals(ibis.literal(baseline), "random_walk@governed", "forecast")
        )
        return daily, frame(governed)
