"""Tearsheet numbers against hand computations, and the page holds every plot."""

import base64

import numpy as np
import pandas as pd
from numpy.testing import assert_allclose

from python_models.backtest.performance import drawdown_path
from python_models.backtest.tearsheet import PLOTS, figures, monthly_returns, page, rolling_sharpe

PNG = b"\x89PNG\r\n\x1a\n"


def series(n=400, seed=2):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2019-11-01", periods=n)
    return pd.Series(rng.normal(0.0004, 0.01, n), index=idx)


def frame(r):
    return pd.DataFrame({"net_return": r, "equity": (1 + r).cumprod(), "drawdown": drawdown_path(r.to_numpy())})


def test_monthly_returns_compound_each_calendar_month():
    r = series()
    table = monthly_returns(r)
    for (year, month), value in table.stack().dropna().items():
        chunk = r[(r.index.year == year) & (r.index.month == month)]
        assert_allclose(value, np.prod(1 + chunk) - 1, rtol=1e-12)
    assert list(table.columns) == list(range(1, 13))
    assert np.isnan(table.loc[2019, 1])  # no session before November 2019


def test_rolling_sharpe_matches_a_window_by_hand():
    r = series()
    rs = rolling_sharpe(r, window=126)
    w = r.iloc[200 - 125 : 201]
    assert_allclose(rs.iloc[200], w.mean() / w.std(ddof=1) * np.sqrt(252), rtol=1e-12)
    assert rs.iloc[:125].isna().all()


def test_figures_and_page_hold_every_plot():
    r = series()
    sleeves = pd.DataFrame(
        {"A": 0.3, "BOND": 0.2, "CASH": 0.5}, index=pd.date_range("2019-11-01", periods=19, freq="MS")
    )
    images = figures("barbell", frame(r), frame(series(seed=3)), sleeves)
    assert set(images) == set(PLOTS)
    assert all(png.startswith(PNG) and len(png) > 2_000 for png in images.values())
    summary = pd.DataFrame({"strategy": ["barbell", "benchmark"], "sharpe": [0.61234, 0.4]})
    leaderboard = pd.DataFrame({"horizon": [21], "rank": [1], "model": ["ensemble"], "mse_ratio": [0.99]})
    html = page("pmx tearsheet", summary, {"barbell": images}, leaderboard)
    assert html.count("<img") == len(PLOTS)
    assert base64.b64encode(images["equity"]).decode() in html
    assert "0.612" in html and "ensemble" in html and html.rstrip().endswith("</html>")
