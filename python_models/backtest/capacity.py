"""Capacity: the same strategy backtested at several book sizes, and how its numbers decay.

Only market impact depends on the book's size (commission and spread are proportional), so a
strategy's capacity is where the square-root impact law (see :mod:`python_models.backtest.engine`)
has eaten a given share of its risk-adjusted return. :func:`capacity_curve` runs the backtest at
each size and reports Sharpe, CAGR and the annual impact cost, with the Sharpe ratio's decay
against the smallest size; :func:`capacity` is the largest size whose decay stays within a
tolerance (10 % by default: "without significant decay").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from python_models.backtest.performance import PERIODS_PER_YEAR, cagr, sharpe_ratio

#: Book sizes the pipeline reports, in currency.
AUM_LEVELS = (1e6, 1e7, 1e8, 1e9)


def capacity_curve(run_at: Callable[[float], pd.DataFrame], aums: Sequence[float] = AUM_LEVELS) -> pd.DataFrame:
    """Backtest statistics per book size.

    Parameters
    ----------
    run_at : callable
        Book size -> :func:`python_models.backtest.engine.run_backtest` output (``net_return`` and
        ``impact_cost`` columns) for that size.
    aums : sequence of float
        Increasing positive book sizes.

    Returns
    -------
    pandas.DataFrame
        One row per size: ``aum``, ``sharpe``, ``cagr``, ``impact_cost`` (mean daily impact x
        252) and ``sharpe_decay`` (1 - sharpe / sharpe at the smallest size; NaN when that
        Sharpe ratio is not positive).
    """
    sizes = np.asarray(aums, dtype=float)
    if len(sizes) == 0 or np.any(sizes <= 0) or np.any(np.diff(sizes) <= 0):
        raise ValueError(f"aums must be positive and increasing, got {list(aums)}")
    rows = []
    for aum in sizes:
        daily = run_at(float(aum))
        r = daily["net_return"].to_numpy(dtype=float)
        rows.append(
            {
                "aum": aum,
                "sharpe": sharpe_ratio(r),
                "cagr": cagr(r),
                "impact_cost": float(daily["impact_cost"].mean() * PERIODS_PER_YEAR),
            }
        )
    table = pd.DataFrame(rows)
    base = table["sharpe"].iloc[0]
    table["sharpe_decay"] = 1.0 - table["sharpe"] / base if base > 0 else np.nan
    return table


def capacity(curve: pd.DataFrame, tolerance: float = 0.10) -> float:
    """The largest size in ``curve`` whose Sharpe decay is at most ``tolerance`` (NaN if none)."""
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"tolerance must lie in (0, 1), got {tolerance}")
    ok = curve.loc[curve["sharpe_decay"] <= tolerance, "aum"]
    return float(ok.max()) if len(ok) else float("nan")
