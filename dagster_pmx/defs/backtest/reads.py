"""What the backtest and report assets read from the warehouse, as ibis expressions.

Filters, joins and the one window (the previous adjusted close) run in DuckDB; only their result reaches
pandas, through :func:`~dagster_pmx.defs.reads.frame`, with the dtypes DuckDB's ``.df()`` gave.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ibis
import pandas as pd

from dagster_pmx.defs.reads import frame
from dagster_pmx.resources import Warehouse
from python_models.llm.scores import COLUMNS as SCORE_COLUMNS


def market_rows(warehouse: Warehouse, since=None) -> tuple[pd.DataFrame, list[str]]:
    """Per (ticker, date), from ``since`` on (every session when None): the close-to-close
    ``simple_return``, the ``open_return`` (adjusted open over the previous adjusted close, minus 1),
    and from the feature library, where dbt computes them, the ``dollar_volume`` and the daily
    ``volatility`` (``realized_vol_21 / sqrt(252)``); and every ticker of the history, sorted."""
    with warehouse.ibis() as db:
        r = db.table("int_returns", database="intermediate")
        f = db.table("features", database="marts")
        previous = r.adj_close.lag().over(ibis.window(group_by=r.ticker, order_by=r.date))
        joined = r.left_join(f, [r.ticker == f.ticker, r.date == f.date])
        rows = joined.select(
            r.ticker,
            r.date,
            r.simple_return,
            open_return=r.open * r.adj_close / r.close / previous - 1,
            dollar_volume=f.dollar_volume,
            volatility=f.realized_vol_21 / math.sqrt(252),
        )
        if since is not None:  # after the lag: the first session's open return needs the close before it
            rows = rows.filter(rows.date >= pd.Timestamp(since).date())
        tickers = frame(r.select("ticker").distinct().order_by("ticker"))["ticker"].tolist()
        return frame(rows), tickers


def impact_priced(warehouse: Warehouse, tickers: Sequence[str], since=None) -> bool:
    """Whether each of ``tickers`` has a positive ``dollar_volume`` on every session from ``since`` on (every
    session when None) where it has a return: :meth:`~dagster_pmx.defs.backtest.engine.Market.impact_priced`
    of the market read from ``since``, without reading the market."""
    with warehouse.ibis() as db:
        r = db.table("int_returns", database="intermediate")
        f = db.table("features", database="marts")
        joined = r.left_join(f, [r.ticker == f.ticker, r.date == f.date])
        unpriced = joined.filter(
            r.ticker.isin(list(tickers)), r.simple_return.notnull(), ~(f.dollar_volume > 0).fill_null(False)
        )
        if since is not None:
            unpriced = unpriced.filter(r.date >= pd.Timestamp(since).date())
        return frame(unpriced.select(r.ticker).limit(1)).empty


def bond_returns(warehouse: Warehouse) -> pd.Series:
    """The safe sleeve's bond proxy return per session (ml.safe_sleeve)."""
    with warehouse.ibis() as db:
        sleeve = frame(db.table("safe_sleeve", database="ml").select("date", "bond_return"))
    return pd.Series(sleeve["bond_return"].to_numpy(), index=pd.DatetimeIndex(sleeve["date"]))


def allocation_rows(warehouse: Warehouse, strategies: Sequence[str] | None = None) -> pd.DataFrame:
    """``strategy, date, ticker, weight`` of marts.allocations (of ``strategies`` only, when given)."""
    with warehouse.ibis() as db:
        t = db.table("allocations", database="marts")
        if strategies:
            t = t.filter(t.strategy.isin(list(strategies)))
        return frame(t.select("strategy", "date", "ticker", "weight"))


def signal_models(warehouse: Warehouse) -> pd.DataFrame:
    """The model behind marts.signals per (ticker, date), by date: governed and barbell trade these."""
    with warehouse.ibis() as db:
        t = db.table("signals", database="marts")
        return frame(t.select("ticker", "date", "model").order_by("date"))


def daily_results(warehouse: Warehouse, columns: Sequence[str]) -> pd.DataFrame:
    """``strategy, date`` and ``columns`` of marts.backtest_daily, by date."""
    with warehouse.ibis() as db:
        t = db.table("backtest_daily", database="marts")
        return frame(t.select("strategy", "date", *columns).order_by("date"))


def tearsheet_inputs(warehouse: Warehouse) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """What the tearsheet draws: the daily results, the summary (best Sharpe first) and the model
    leaderboard (by horizon and rank)."""
    with warehouse.ibis() as db:
        d = db.table("backtest_daily", database="marts")
        s = db.table("backtest_summary", database="marts")
        board = db.table("model_leaderboard", database="marts")
        daily = frame(d.select("strategy", "date", "net_return", "equity", "drawdown").order_by("date"))
        summary = frame(
            s.select(
                "strategy", "sharpe", "sortino", "cagr", "volatility", "max_drawdown", "calmar",
                "information_ratio", "turnover", "exposure",
            ).order_by(ibis.desc("sharpe"))
        )  # fmt: skip
        leaderboard = frame(
            board.select("horizon", "rank", "model", "mse_ratio", "directional_accuracy", "da_low", "da_high").order_by(
                ["horizon", "rank"]
            )
        )
    return daily, summary, leaderboard


def llm_scores(warehouse: Warehouse) -> pd.DataFrame:
    """marts.llm_scores (empty when the LLM source never ran)."""
    if not warehouse.has("marts.llm_scores"):
        return pd.DataFrame(columns=SCORE_COLUMNS)
    with warehouse.ibis() as db:
        return frame(db.table("llm_scores", database="marts"))
