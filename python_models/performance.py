"""Strategy performance statistics (252 sessions a year, zero risk-free rate)."""

from __future__ import annotations

import numpy as np
import pandas as pd

PERIODS_PER_YEAR = 252


def sharpe_ratio(returns) -> float:
    """Annualised Sharpe ratio of daily returns: mean / sd (ddof 1) times sqrt(252), zero
    risk-free rate; NaN for a constant series."""
    r = np.asarray(returns, dtype=float)
    sd = r.std(ddof=1)
    return float(r.mean() / sd * np.sqrt(PERIODS_PER_YEAR)) if sd > 0 else float("nan")


def max_drawdown(returns) -> float:
    """Largest fall of compounded equity from its running peak (negative or zero)."""
    equity = np.cumprod(1.0 + np.asarray(returns, dtype=float))
    return float(min(0.0, (equity / np.maximum.accumulate(equity) - 1.0).min())) if equity.size else float("nan")


def profit_factor(returns) -> float:
    """Sum of gains over the absolute sum of losses; NaN without losses."""
    r = np.asarray(returns, dtype=float)
    losses = -r[r < 0].sum()
    return float(r[r > 0].sum() / losses) if losses > 0 else float("nan")


def summarize(net_return: pd.Series, benchmark_return: pd.Series, turnover: pd.Series) -> dict[str, float]:
    """Headline statistics of a daily net-return series.

    ``sharpe`` and ``sortino`` are annualised with a zero risk-free rate (Sortino's
    downside deviation is the root mean square of ``min(r, 0)``); ``max_drawdown`` is
    negative or zero; ``information_ratio`` is the annualised mean over the annualised
    standard deviation of ``r - benchmark``; ``hit_rate`` is the share of positive days
    among days with a non-zero return; ``profit_factor`` is gains over absolute losses;
    ``cagr`` compounds over ``n / 252`` years; ``turnover`` is the mean daily turnover
    times 252.
    """
    r = net_return.astype(float)
    if r.isna().any() or len(r) < 2:
        raise ValueError("net returns must be a gap-free series of at least two sessions")
    b = benchmark_return.reindex(r.index)
    if b.isna().any():
        raise ValueError("benchmark returns must cover every session of the strategy")
    ann = np.sqrt(PERIODS_PER_YEAR)
    sd = r.std(ddof=1)
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    equity = (1.0 + r).cumprod()
    active = r - b
    te = active.std(ddof=1)
    traded = r[r != 0]
    years = len(r) / PERIODS_PER_YEAR
    return {
        "sharpe": sharpe_ratio(r),
        "sortino": float(r.mean() / downside * ann) if downside > 0 else float("nan"),
        "max_drawdown": max_drawdown(r),
        "information_ratio": float(active.mean() / te * ann) if te > 0 else float("nan"),
        "hit_rate": float((traded > 0).mean()) if len(traded) else float("nan"),
        "profit_factor": profit_factor(r),
        "cagr": float(equity.iloc[-1] ** (1.0 / years) - 1.0),
        "volatility": float(sd * ann),
        "turnover": float(turnover.reindex(r.index).fillna(0.0).mean() * PERIODS_PER_YEAR),
        "start_date": r.index[0],
        "end_date": r.index[-1],
    }
