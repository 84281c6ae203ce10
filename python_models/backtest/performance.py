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


def drawdown_path(returns) -> np.ndarray:
    """Equity over its running peak, minus 1, per period; the starting capital (1) counts as
    a peak, so a loss on the first day is a drawdown (as in empyrical). A 2-d array holds one path
    per row."""
    equity = np.cumprod(1.0 + np.asarray(returns, dtype=float), axis=-1)
    return equity / np.maximum(np.maximum.accumulate(equity, axis=-1), 1.0) - 1.0


def max_drawdown(returns) -> float:
    """Largest fall of compounded equity from its running peak (negative or zero)."""
    path = drawdown_path(returns)
    return float(path.min()) if path.size else float("nan")


def max_drawdown_duration(returns) -> int:
    """Longest run of consecutive periods spent below a previous peak (until recovery or the end)."""
    under = drawdown_path(returns) < 0
    longest = run = 0
    for flag in under:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    return int(longest)


def cagr(returns) -> float:
    """Compound annual growth rate over ``n / 252`` years."""
    r = np.asarray(returns, dtype=float)
    return float(np.prod(1.0 + r) ** (PERIODS_PER_YEAR / r.size) - 1.0)


def profit_factor(returns) -> float:
    """Sum of gains over the absolute sum of losses; NaN without losses."""
    r = np.asarray(returns, dtype=float)
    losses = -r[r < 0].sum()
    return float(r[r > 0].sum() / losses) if losses > 0 else float("nan")


def summarize(
    net_return: pd.Series,
    benchmark_return: pd.Series,
    turnover: pd.Series,
    exposure: pd.Series | None = None,
    excess_return: pd.Series | None = None,
) -> dict[str, float]:
    """Headline statistics of a daily net-return series.

    ``sharpe`` and ``sortino`` are annualised with a zero risk-free rate (Sortino's
    downside deviation is the root mean square of ``min(r, 0)``); ``max_drawdown`` is
    negative or zero; ``information_ratio`` is the annualised mean over the annualised
    standard deviation of ``r - benchmark``; ``hit_rate`` is the share of positive days
    among days with a non-zero return, of ``excess_return`` (over the cash rate) when given,
    so that a day spent in cash earning interest is not a win; ``profit_factor`` is gains over absolute losses;
    ``cagr`` compounds over ``n / 252`` years; ``calmar`` is ``cagr / |max_drawdown|``;
    ``max_drawdown_days`` the longest stretch below a previous peak; ``turnover`` is the
    mean daily turnover times 252; ``exposure`` the mean gross risky exposure (NaN without
    ``exposure``). The definitions match empyrical's where it has the statistic (its
    information ratio, ``excess_sharpe``, is not annualised; this one is).
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
    active = r - b
    te = active.std(ddof=1)
    x = r if excess_return is None else excess_return.reindex(r.index).astype(float)
    traded = x[x != 0]
    mdd, growth = max_drawdown(r), cagr(r)
    return {
        "sharpe": sharpe_ratio(r),
        "sortino": float(r.mean() / downside * ann) if downside > 0 else float("nan"),
        "max_drawdown": mdd,
        "max_drawdown_days": max_drawdown_duration(r),
        "information_ratio": float(active.mean() / te * ann) if te > 0 else float("nan"),
        "hit_rate": float((traded > 0).mean()) if len(traded) else float("nan"),
        "profit_factor": profit_factor(r),
        "cagr": growth,
        "calmar": growth / abs(mdd) if mdd < 0 else float("nan"),
        "volatility": float(sd * ann),
        "turnover": float(turnover.reindex(r.index).fillna(0.0).mean() * PERIODS_PER_YEAR),
        "exposure": float(exposure.reindex(r.index).mean()) if exposure is not None else float("nan"),
        "start_date": r.index[0],
        "end_date": r.index[-1],
    }
