"""Strategy books as stored rows, and the daily refresh's extension of them: a book decided in two
runs (the stored part, then the dates after it) is the book decided in one."""

import numpy as np
import pandas as pd
from numpy.testing import assert_allclose

from python_models.backtest.engine import run_backtest
from python_models.portfolio.allocation import BOND
from python_models.portfolio.books import (
    ALLOCATION_COLUMNS,
    DECISION_COLUMNS,
    allocation_rows,
    allocation_table,
    book_of,
    control_books,
    decision_rows,
    extend_books,
    kelly_signals,
)
from python_models.portfolio.risk_limits import DrawdownPolicy
from python_models.portfolio.sizing import CASH

DATES = pd.bdate_range("2020-01-01", periods=6)
POLICY = DrawdownPolicy(de_risk_at=0.15, re_risk_at=0.10, de_risk_scale=0.5, stop_at=0.25, stop_sessions=3)


def test_the_governed_bet_shrinks_with_confidence_and_a_models_own_does_not():
    signals = pd.DataFrame(
        {
            "strategy": ["governed", "governed", "governed", "m"],
            "ticker": list("ABCA"),
            "date": DATES[0],
            "expected_return": [0.02, 0.02, 0.0, 0.02],
            "forecast_std": 0.05,
            "confidence": [0.75, 0.5, 0.9, np.nan],
            "tradable": [True, True, False, None],
        }
    )
    sized = kelly_signals(signals)
    assert list(sized.columns) == ["strategy", "ticker", "date", "expected_return", "forecast_std"]
    # 2c - 1 above the 0.55 minimum, nothing below it; a model's own book keeps its forecast
    assert_allclose(sized["expected_return"], [0.02 * 0.5, 0.0, 0.0, 0.02])


def test_allocation_rows_keep_positions_and_the_cash_remainder_and_read_back_as_the_book():
    book = pd.DataFrame({"A": [0.3, 0.0, 0.1], BOND: [0.2, 0.5, 0.0]}, index=DATES[:3])
    rows = allocation_rows("barbell", book)
    assert not ((rows["ticker"] == "A") & (rows["date"] == DATES[1])).any()  # a zero is no position
    cash = rows[rows["ticker"] == CASH].set_index("date")["weight"]
    assert_allclose(cash, [0.5, 0.5, 0.9])
    assert set(rows.loc[rows["ticker"].isin([CASH, BOND]), "sleeve"]) == {"safe"}
    assert set(rows.loc[rows["ticker"] == "A", "sleeve"]) == {"risky"}
    pd.testing.assert_frame_equal(book_of(rows), book.rename_axis(index="date"), check_like=True)
    table = allocation_table([rows, allocation_rows("a", book)])
    assert list(table.columns) == ALLOCATION_COLUMNS and list(table["strategy"].unique()) == ["a", "barbell"]


def test_decision_rows_keep_zeros_and_an_extended_book_is_the_whole_one():
    whole = pd.DataFrame({"A": [0.3, 0.0, 0.1, 0.2], "B": [0.0, 0.0, 0.4, 0.1]}, index=DATES[:4])
    stored = decision_rows({"x": whole.iloc[:2]})
    assert list(stored.columns) == DECISION_COLUMNS and len(stored) == 4  # zeros kept: a decision to hold none
    new = {"x": whole.iloc[2:]}
    extended = extend_books(new, stored)
    pd.testing.assert_frame_equal(extended["x"], whole, check_names=False, check_freq=False)
    assert decision_rows({"x": whole.iloc[:0]}).empty


def test_the_control_resumed_from_the_stored_scales_gives_the_whole_path():
    sessions = pd.bdate_range("2020-01-01", periods=80)
    r = np.r_[np.full(20, 0.002), np.full(25, -0.02), np.full(35, 0.01)]
    returns = pd.DataFrame({"A": r, BOND: 0.0001}, index=sessions)
    books = {"governed": pd.DataFrame({"A": 0.9, BOND: 0.0}, index=sessions[::5])}

    def run(w):
        return run_backtest(w, returns, cost_bps=10.0, execution="next_close")

    rows, states = control_books(books, run, sessions, POLICY)
    whole = states[0].set_index("date")
    assert set(whole["state"]) >= {"normal", "de_risked"} and (states[0]["strategy"] == "governed").all()
    stored = whole[["scale"]].iloc[:50].rename(columns={"scale": "governed"})
    rows2, states2 = control_books(books, run, sessions, POLICY, stored_scales=stored)
    pd.testing.assert_frame_equal(states2[0], states[0], check_exact=True)
    pd.testing.assert_frame_equal(rows2[0], rows[0], check_exact=True)
