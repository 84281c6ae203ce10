"""Vectorised weight-based backtest with proportional transaction costs.

Timing: the weights dated ``t`` are decided and traded at the close of ``t`` and earn the
returns of session ``t + 1``. Never the same bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def run_backtest(weights: pd.DataFrame, returns: pd.DataFrame, cost_bps: float = 10.0) -> pd.DataFrame:
    """Daily gross and net returns of holding ``weights``.

    Parameters
    ----------
    weights : pandas.DataFrame
        Target weights decided at each date's close (dates by tickers); the rest is cash
        earning nothing. Dates with no row hold no position.
    returns : pandas.DataFrame
        Simple returns of each session (dates by tickers); its index is the calendar.
    cost_bps : float
        Cost per unit of turnover, in basis points of equity.

    Returns
    -------
    pandas.DataFrame
        Indexed by session: ``gross_return`` (the previous close's weights times this
        session's returns), ``turnover`` (sum of absolute trades at this close, against
        the weights drifted by this session's returns), ``cost`` (``cost_bps`` per unit
        of turnover), ``net_return = gross_return - cost``, ``equity`` (compounded net,
        starting at 1) and ``drawdown`` (equity over its running peak, minus 1).
    """
    if cost_bps < 0:
        raise ValueError(f"cost_bps must be non-negative, got {cost_bps}")
    if not returns.index.is_monotonic_increasing or returns.index.has_duplicates:
        raise ValueError("returns index must be sorted sessions without duplicates")
    missing = weights.columns.difference(returns.columns)
    if len(missing):
        raise ValueError(f"weights name tickers without returns: {list(missing)[:5]}")
    w = weights.reindex(index=returns.index, columns=returns.columns).fillna(0.0)
    if not np.all(np.isfinite(w.to_numpy())):
        raise ValueError("weights must be finite")
    r = returns.fillna(0.0)
    held = w.shift(1).fillna(0.0)
    gross = (held * r).sum(axis=1)
    drifted = held * (1.0 + r)
    drifted = drifted.div((1.0 + gross).where(lambda x: x != 0, np.nan), axis=0).fillna(0.0)
    turnover = (w - drifted).abs().sum(axis=1)
    cost = turnover * cost_bps / 1e4
    net = gross - cost
    equity = (1.0 + net).cumprod()
    drawdown = equity / equity.cummax() - 1.0
    return pd.DataFrame(
        {
            "gross_return": gross,
            "cost": cost,
            "net_return": net,
            "equity": equity,
            "drawdown": drawdown,
            "turnover": turnover,
        }
    )
