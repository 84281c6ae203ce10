"""Strategy books as the warehouse stores them, and how the daily refresh extends them.

A *book* is a strategy's decisions as dates by tickers (CASH implicit: the remainder). The
warehouse holds them two ways: ``marts.allocations`` rows (positions held, with the CASH row)
after the drawdown control, and ``ml.strategy_decisions`` rows (every decision, zeros kept)
before it. A resumed run decides only the dates after the last stored one; it lays them on the
whole history's grid, appends them to the stored books (:func:`extend_books`) and restarts the
drawdown control from the stored scales (:func:`control_books`), so the rows it adds are the
ones a rebuild writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from python_models.portfolio.allocation import BOND
from python_models.portfolio.risk_limits import DrawdownPolicy, apply_drawdown_control
from python_models.portfolio.sizing import CASH, confidence_scale

#: Columns of an allocation row and of a stored decision row.
ALLOCATION_COLUMNS = ["strategy", "date", "ticker", "weight", "sleeve"]
DECISION_COLUMNS = ["strategy", "date", "ticker", "weight"]


def kelly_signals(signals: pd.DataFrame, min_confidence: float = 0.55) -> pd.DataFrame:
    """Per-strategy signals as the per-asset Kelly books size them: the governed book's bet
    shrinks with its signal's confidence (``2c - 1``, 0 below ``min_confidence``); a model's own
    book takes its forecasts as they are.

    ``signals`` has ``strategy, ticker, date, expected_return, forecast_std, confidence,
    tradable``; the result drops the last two.
    """
    sized = signals.drop(columns=["confidence", "tradable"])
    governed = (signals["strategy"] == "governed").to_numpy()
    sized.loc[governed, "expected_return"] *= confidence_scale(signals.loc[governed, "confidence"], min_confidence)
    return sized


def allocation_rows(strategy: str, decisions: pd.DataFrame) -> pd.DataFrame:
    """Decisions (dates by tickers) as allocation rows of the positions held, with the CASH remainder."""
    long = decisions.rename_axis(index="date", columns="ticker").stack().rename("weight").reset_index()
    long = long[long["weight"] != 0]  # positions only: a ticker first bought later adds no rows before
    cash = (1.0 - decisions.sum(axis=1)).rename("weight").rename_axis("date").reset_index().assign(ticker=CASH)
    out = pd.concat([long, cash], ignore_index=True).assign(strategy=strategy)
    out["sleeve"] = np.where(out["ticker"].isin([CASH, BOND]), "safe", "risky")
    return out


def allocation_table(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Allocation rows of several strategies as one ``marts.allocations`` table, in key order."""
    table = pd.concat(list(frames), ignore_index=True)[ALLOCATION_COLUMNS]
    return table.sort_values(["strategy", "date", "ticker"]).reset_index(drop=True)


def book_of(rows: pd.DataFrame) -> pd.DataFrame:
    """Allocation or decision rows of one strategy as its decisions (dates by tickers), CASH left implicit."""
    held = rows[rows["ticker"] != CASH]
    return held.pivot(index="date", columns="ticker", values="weight").fillna(0.0).rename_axis(columns=None)


def decision_rows(books: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The books as ``ml.strategy_decisions`` rows (every decision, zeros kept)."""
    frames = [
        w.rename_axis(index="date", columns="ticker").stack().rename("weight").reset_index().assign(strategy=s)
        for s, w in books.items()
        if len(w)
    ]
    return pd.concat(frames, ignore_index=True)[DECISION_COLUMNS] if frames else pd.DataFrame(columns=DECISION_COLUMNS)


def extend_books(books: dict[str, pd.DataFrame], stored: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each strategy's stored decisions (``ml.strategy_decisions`` rows) followed by its new ones
    (``books``, decided after the last stored date), columns in ticker order."""
    return {
        s: pd.concat([book_of(stored[stored["strategy"] == s]), w]).fillna(0.0).sort_index(axis=1)
        for s, w in books.items()
    }


def control_books(
    books: dict[str, pd.DataFrame],
    run: Callable[[pd.DataFrame], pd.DataFrame],
    sessions: pd.DatetimeIndex,
    policy: DrawdownPolicy,
    stored_scales: pd.DataFrame | None = None,
) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """The drawdown control applied to each book.

    ``run`` values a decision frame (the pipeline's backtester); :data:`BOND` is safe and keeps
    its weight. ``stored_scales`` (sessions by strategies) starts each strategy's iteration from
    the stored path. Returns, per strategy in the order of ``books``, its allocation rows after
    the control and its per-session ``date, state, scale, drawdown, strategy`` rows.
    """
    rows, states = [], []
    for strategy, book in books.items():
        initial = None if stored_scales is None or strategy not in stored_scales else stored_scales[strategy]
        controlled, state = apply_drawdown_control(book, run, sessions, policy, safe=[BOND], initial=initial)
        rows.append(allocation_rows(strategy, controlled))
        states.append(state.rename_axis("date").reset_index().assign(strategy=strategy))
    return rows, states
