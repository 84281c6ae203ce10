"""Trading costs of a backtest: commission, half-spread and square-root market impact.

Costs at each trade: ``(commission_bps + half_spread_bps) / 1e4`` per unit of turnover (a
fraction of the book's value when it trades), plus market impact by the square-root law when traded value and
volume are known: ``impact_coefficient * sigma * sqrt(participation)`` per unit traded,
where ``participation = |trade| * book value / dollar volume`` of the session and ``sigma``
the asset's daily volatility. The book value for participation is ``aum`` times the equity
compounded *before* costs (so the whole path stays vectorised; the difference is the
second-order effect of costs on the book's size). A cost is paid when the book trades; the
``cost`` column restates it as a fraction of the previous close's equity, grown to the close with
the book (``(1 + gross_return)`` times the cost at the trade), so ``net_return = gross_return -
cost`` is the exact session return of a book that pays its costs in cash; the paper broker's
NAV checks this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CostModel:
    """Trading costs: commission and half-spread in bps of traded value, and the coefficient
    of the square-root impact law (0 switches impact off)."""

    commission_bps: float = 10.0
    half_spread_bps: float = 0.0
    impact_coefficient: float = 0.0

    def __post_init__(self) -> None:
        if min(self.commission_bps, self.half_spread_bps, self.impact_coefficient) < 0:
            raise ValueError("cost parameters must be non-negative")

    @property
    def proportional(self) -> float:
        """Fraction of traded value paid as commission plus half-spread."""
        return (self.commission_bps + self.half_spread_bps) / 1e4

    def impact_rate(self, participation, sigma):
        """Impact per unit of traded value, by the square-root law: ``coefficient * sigma *
        sqrt(participation)`` (participation: traded value over the session's dollar volume)."""
        return self.impact_coefficient * sigma * np.sqrt(participation)


def session_costs(
    delta: np.ndarray,
    gross: np.ndarray,
    size_at_trade: np.ndarray,
    costs: CostModel,
    returns: pd.DataFrame,
    dollar_volume: pd.DataFrame | None,
    volatility: pd.DataFrame | None,
    aum: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turnover, impact and all costs per session of a book's path.

    Parameters
    ----------
    delta : numpy.ndarray
        The trade per session and ticker, as a fraction of the book's value when it trades.
    gross : numpy.ndarray
        The book's gross return per session.
    size_at_trade : numpy.ndarray
        The book's value when it trades, relative to its start (before costs).
    costs : CostModel
        Commission, half-spread and impact.
    returns : pandas.DataFrame
        Returns, sessions by tickers: the calendar and the columns of ``delta``.
    dollar_volume, volatility : pandas.DataFrame, optional
        Traded value and daily volatility per session and ticker; needed for impact.
    aum : float
        The book's starting value in currency.

    Returns
    -------
    (turnover, impact, cost)
        Per session; ``cost`` (all costs) as a fraction of the previous close's equity.
    """
    sessions, tickers = returns.index, returns.columns
    traded = np.abs(delta)
    turnover = traded.sum(axis=1)
    impact = np.zeros(len(sessions))
    if costs.impact_coefficient > 0:
        if dollar_volume is None or volatility is None:
            raise ValueError("market impact needs dollar_volume and volatility")
        dv = dollar_volume.reindex(index=sessions, columns=tickers).to_numpy(dtype=float)
        sigma = volatility.reindex(index=sessions, columns=tickers).to_numpy(dtype=float)
        needed = traded > 0
        if (~np.isfinite(dv[needed]) | (dv[needed] <= 0) | ~np.isfinite(sigma[needed])).any():
            raise ValueError("dollar volume and volatility must be known and positive wherever the book trades")
        with np.errstate(divide="ignore", invalid="ignore"):
            participation = np.where(needed, traded * aum * size_at_trade[:, None] / dv, 0.0)
            impact = (costs.impact_rate(participation, np.nan_to_num(sigma)) * traded).sum(axis=1)
    # turnover is a fraction of the book's value when it trades; paid then, a cost lowers the session's
    # close by itself grown to the close, and `cost` restates that as a fraction of the previous close
    cost = (costs.proportional * turnover + impact) * (1.0 + gross)
    return turnover, impact, cost
