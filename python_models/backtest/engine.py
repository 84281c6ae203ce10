"""Vectorised weight-based backtest: execution timing, rebalancing calendar, cash rate, costs.

Timing. The weights dated ``t`` are *decided* at the close of ``t``. ``execution`` says when
they are traded:

* ``"close"``  — at the close of ``t`` itself (market-on-close), earning session ``t + 1``
  on; the pipeline's convention so far;
* ``"next_close"`` — at the close of ``t + 1``, earning ``t + 2`` on (one session of
  implementation lag);
* ``"next_open"`` — at the open of ``t + 1``: the old book earns the overnight return
  ``open[t+1] / close[t] - 1``, the new book the rest of session ``t + 1``. Needs open prices.

In no mode does a decision earn the return of the session it was decided on.

Between decisions the book drifts with prices (no trading); ``rebalance`` thins the
decisions to a calendar (every k-th decision, or the last decision of each week or month).
The uninvested remainder ``1 - sum(w)`` is cash and earns ``cash_rate`` (negative cash, a
levered book, pays it).

Costs at each trade (commission, half-spread and square-root market impact) are
:mod:`python_models.backtest.costs`'s; ``net_return = gross_return - cost`` is the exact session
return of a book that pays its costs in cash (the paper broker's NAV checks this).

The core works on a grid of steps: with ``next_open`` each session is two steps (overnight
and intraday) and trades happen between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import pandas as pd

from python_models.backtest.costs import CostModel, session_costs
from python_models.backtest.performance import drawdown_path

EXECUTIONS = ("close", "next_close", "next_open")


def _simulate(trade: np.ndarray, targets: np.ndarray, r: np.ndarray, rf: np.ndarray):
    """Book on a grid of steps: returns per-step gross return, holdings entering each step,
    and turnover at the end of each step.

    ``trade[s]`` says the book is reset to ``targets[s]`` at the end of step ``s``; between
    trades each holding grows with its asset and the cash with ``rf``. With ``j`` the last
    trade before step ``s``, the book set at ``j`` is worth ``V(s) = sum_i w_i(j) G_i(j, s)
    + c(j) G_rf(j, s)`` at the end of ``s`` (``G`` the growth from ``j`` to ``s``), so the
    return of step ``s`` is ``V(s) / V(s - 1) - 1``: no loop over steps.
    """
    steps, n = r.shape
    log_g = np.vstack([np.zeros((1, n)), np.cumsum(np.log1p(r), axis=0)])  # row s + 1: growth to end of s
    log_rf = np.concatenate([[0.0], np.cumsum(np.log1p(rf))])
    # last trade at or before each step, -1 for none; a book of 0 risky and 1 cash before the first
    last = np.maximum.accumulate(np.where(trade, np.arange(steps), -1))
    j = np.concatenate([[-1], last[:-1]])  # the book entering step s was set at j(s)
    book = np.vstack([np.zeros((1, n)), targets])  # row j + 1: weights set at j
    w = book[j + 1]
    cash = 1.0 - w.sum(axis=1)
    s_idx = np.arange(steps)

    def value(at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        risky = w * np.exp(log_g[at + 1] - log_g[j + 1])
        return risky, risky.sum(axis=1) + cash * np.exp(log_rf[at + 1] - log_rf[j + 1])

    risky_now, v_now = value(s_idx)
    _, v_prev = value(s_idx - 1)
    v_prev = np.where(s_idx - 1 == j, 1.0, v_prev)  # the book is worth 1 right after it is set
    gross = v_now / v_prev - 1.0
    drifted = risky_now / v_now[:, None]  # holdings at the end of s, before any trade
    entering = np.vstack([np.zeros((1, n)), drifted[:-1]])
    entering[trade[:-1].nonzero()[0] + 1] = targets[:-1][trade[:-1]]
    delta = np.where(trade[:, None], targets - drifted, 0.0)
    return gross, entering, delta


def _decisions(weights: pd.DataFrame, sessions: pd.DatetimeIndex, rebalance: int | str) -> pd.DataFrame:
    w = weights.sort_index()
    if isinstance(rebalance, str):
        if rebalance not in ("W", "M"):
            raise ValueError(f"rebalance must be a positive int, 'W' or 'M', got {rebalance!r}")
        period = pd.DatetimeIndex(w.index).to_period(rebalance)
        return w[~pd.Series(period, index=w.index).duplicated(keep="last").to_numpy()]
    if int(rebalance) < 1:
        raise ValueError(f"rebalance must be a positive int, 'W' or 'M', got {rebalance!r}")
    return w.iloc[:: int(rebalance)]


@dataclass(frozen=True)
class _Path:
    """Per session: gross return, holdings, trades (fractions of the book), each position's part of the
    gross return (plus cash's), and the book's value at the trade relative to the start, before costs."""

    gross: np.ndarray
    held: np.ndarray
    delta: np.ndarray
    part: np.ndarray
    size_at_trade: np.ndarray


def _check_inputs(weights: pd.DataFrame, returns: pd.DataFrame, cost_bps: float, execution: str, aum: float) -> None:
    """Reject inputs the backtest cannot value: unknown execution, unsorted sessions, tickers or
    dates without returns, non-finite weights, a non-positive book."""
    if cost_bps < 0:
        raise ValueError(f"cost_bps must be non-negative, got {cost_bps}")
    if execution not in EXECUTIONS:
        raise ValueError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
    if not returns.index.is_monotonic_increasing or returns.index.has_duplicates:
        raise ValueError("returns index must be sorted sessions without duplicates")
    missing = weights.columns.difference(returns.columns)
    if len(missing):
        raise ValueError(f"weights name tickers without returns: {list(missing)[:5]}")
    if not np.all(np.isfinite(weights.fillna(0.0).to_numpy(dtype=float))):
        raise ValueError("weights must be finite")
    unknown = weights.index.difference(returns.index)
    if len(unknown):
        raise ValueError(f"weights dated on sessions missing from returns: {list(unknown)[:3]}")
    if aum <= 0:
        raise ValueError(f"aum must be positive, got {aum}")


def _trades(
    weights: pd.DataFrame, returns: pd.DataFrame, rebalance: int | str, execution: str
) -> tuple[np.ndarray, np.ndarray]:
    """Timing and calendar: the decisions kept by ``rebalance``, moved to the session they are
    traded at under ``execution``. Returns ``(target, trade)``: per session the weights traded to
    (sessions by tickers) and whether the book trades."""
    sessions, tickers = returns.index, returns.columns
    chosen = _decisions(weights, sessions, rebalance)
    at = sessions.get_indexer(chosen.index) + (0 if execution == "close" else 1)
    keep = at < len(sessions)  # a decision on the last session is never traded when execution lags
    target = np.zeros((len(sessions), len(tickers)))
    trade = np.zeros(len(sessions), bool)
    target[at[keep]] = chosen.reindex(columns=tickers).fillna(0.0).to_numpy(float)[keep]
    trade[at[keep]] = True
    return target, trade


def _close_path(trade: np.ndarray, target: np.ndarray, r: np.ndarray, rf: np.ndarray) -> _Path:
    """The path when the book trades at closes: one step per session."""
    g, entering, delta = _simulate(trade, target, r, rf)
    part = np.column_stack([entering * r, (1.0 - entering.sum(axis=1)) * rf])
    return _Path(gross=g, held=entering, delta=delta, part=part, size_at_trade=np.cumprod(1.0 + g))


def _open_path(
    trade: np.ndarray,
    target: np.ndarray,
    r: np.ndarray,
    rf: np.ndarray,
    returns: pd.DataFrame,
    open_returns: pd.DataFrame | None,
) -> _Path:
    """The path when the book trades at the next open: each session an overnight step (the old
    book) and an intraday one (the new book), the trade between them."""
    if open_returns is None:
        raise ValueError("execution 'next_open' needs open_returns (open / previous close - 1)")
    on = open_returns.reindex(index=returns.index, columns=returns.columns).to_numpy(dtype=float)
    if np.isnan(on[trade]).any():
        raise ValueError("open prices are missing on sessions where the book trades at the open")
    on = np.nan_to_num(on)
    intraday = (1.0 + r) / (1.0 + on) - 1.0
    n_sessions, n_tickers = r.shape
    grid_r = np.empty((2 * n_sessions, n_tickers))
    grid_r[0::2], grid_r[1::2] = on, intraday
    grid_rf = np.zeros(2 * n_sessions)
    grid_rf[1::2] = rf  # cash accrues over the session, once
    grid_trade = np.zeros(2 * n_sessions, bool)
    grid_trade[0::2] = trade  # traded at the open: after the overnight step
    grid_target = np.repeat(target, 2, axis=0)
    g, entering, delta = _simulate(grid_trade, grid_target, grid_r, grid_rf)
    gross = (1.0 + g[0::2]) * (1.0 + g[1::2]) - 1.0
    step = np.column_stack([entering * grid_r, (1.0 - entering.sum(axis=1)) * grid_rf])
    part = step[0::2] + (1.0 + g[0::2])[:, None] * step[1::2]
    # value at the open relative to the previous close, for the participation of the trade
    size_at_trade = np.concatenate([[1.0], np.cumprod(1.0 + gross)[:-1]]) * (1.0 + g[0::2])
    # held: the book over the intraday part, after the open's trade
    return _Path(gross=gross, held=entering[1::2], delta=delta[0::2], part=part, size_at_trade=size_at_trade)


def _daily(
    path: _Path,
    turnover: np.ndarray,
    impact: np.ndarray,
    cost: np.ndarray,
    rf: np.ndarray,
    returns: pd.DataFrame,
    safe_assets: tuple[str, ...],
) -> pd.DataFrame:
    """The results per session: returns, costs, equity, drawdown, exposure and cash."""
    held, net = path.held, path.gross - cost
    return pd.DataFrame(
        {
            "gross_return": path.gross,
            "cost": cost,
            "net_return": net,
            "excess_return": net - rf,
            "equity": np.cumprod(1.0 + net),
            "drawdown": drawdown_path(net),
            "turnover": turnover,
            "impact_cost": impact,
            "exposure": np.abs(held[:, ~returns.columns.isin(list(safe_assets))]).sum(axis=1),
            "cash_weight": 1.0 - held.sum(axis=1),
        },
        index=returns.index,
    )


@overload
def run_backtest(
    weights: pd.DataFrame,
    returns: pd.DataFrame,
    cost_bps: float = ...,
    *,
    costs: CostModel | None = ...,
    execution: str = ...,
    rebalance: int | str = ...,
    cash_rate: pd.Series | None = ...,
    open_returns: pd.DataFrame | None = ...,
    dollar_volume: pd.DataFrame | None = ...,
    volatility: pd.DataFrame | None = ...,
    aum: float = ...,
    contributions: Literal[False] = ...,
    safe_assets: tuple[str, ...] = ...,
) -> pd.DataFrame: ...


@overload
def run_backtest(
    weights: pd.DataFrame,
    returns: pd.DataFrame,
    cost_bps: float = ...,
    *,
    costs: CostModel | None = ...,
    execution: str = ...,
    rebalance: int | str = ...,
    cash_rate: pd.Series | None = ...,
    open_returns: pd.DataFrame | None = ...,
    dollar_volume: pd.DataFrame | None = ...,
    volatility: pd.DataFrame | None = ...,
    aum: float = ...,
    contributions: Literal[True],
    safe_assets: tuple[str, ...] = ...,
) -> tuple[pd.DataFrame, pd.DataFrame]: ...


@overload
def run_backtest(
    weights: pd.DataFrame,
    returns: pd.DataFrame,
    cost_bps: float = ...,
    *,
    costs: CostModel | None = ...,
    execution: str = ...,
    rebalance: int | str = ...,
    cash_rate: pd.Series | None = ...,
    open_returns: pd.DataFrame | None = ...,
    dollar_volume: pd.DataFrame | None = ...,
    volatility: pd.DataFrame | None = ...,
    aum: float = ...,
    contributions: bool = ...,
    safe_assets: tuple[str, ...] = ...,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]: ...


def run_backtest(
    weights: pd.DataFrame,
    returns: pd.DataFrame,
    cost_bps: float = 10.0,
    *,
    costs: CostModel | None = None,
    execution: str = "close",
    rebalance: int | str = 1,
    cash_rate: pd.Series | None = None,
    open_returns: pd.DataFrame | None = None,
    dollar_volume: pd.DataFrame | None = None,
    volatility: pd.DataFrame | None = None,
    aum: float = 1e6,
    contributions: bool = False,
    safe_assets: tuple[str, ...] = (),
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Daily gross and net returns of holding ``weights``.

    Parameters
    ----------
    weights : pandas.DataFrame
        Target weights decided at each date's close (dates by tickers); a missing ticker is
        no position. Dates without a row are not decision dates: the book drifts. Before
        the first decision the book is all cash.
    returns : pandas.DataFrame
        Simple close-to-close returns of each session (dates by tickers); its index is the
        calendar.
    cost_bps : float
        Commission per unit of turnover, in bps (ignored when ``costs`` is given).
    costs : CostModel, optional
        Commission, half-spread and impact.
    execution : {"close", "next_close", "next_open"}
        When a decision is traded (see the module docstring).
    rebalance : int or {"W", "M"}
        Trade every k-th decision, or only the last decision of each week or month.
    cash_rate : pandas.Series, optional
        Simple return of cash per session (e.g. the daily risk-free rate); 0 by default.
    open_returns : pandas.DataFrame, optional
        ``open / previous close - 1`` per session and ticker; required by ``next_open``.
    dollar_volume, volatility : pandas.DataFrame, optional
        Traded value and daily return volatility per session and ticker, for the impact
        cost (both required when ``costs.impact_coefficient > 0``).
    aum : float
        Starting book value in currency, for participation.
    contributions : bool
        Also return each position's contribution to the gross return (see Returns).
    safe_assets : tuple of str
        Tickers that are safe-sleeve holdings (a bond proxy): positions like any other, but
        not counted in ``exposure``.

    Returns
    -------
    pandas.DataFrame
        Indexed by session: ``gross_return``, ``turnover`` (sum of absolute trades),
        ``cost`` (all costs), ``impact_cost`` (its impact part), ``net_return =
        gross_return - cost``, ``excess_return`` (net return minus the cash rate),
        ``equity`` (compounded net from 1), ``drawdown`` (equity over its running peak, the
        starting 1 included, minus 1), ``exposure`` (gross risky exposure held over the
        session) and ``cash_weight`` (cash held over the session).
    pandas.DataFrame, only with ``contributions=True``
        Sessions by tickers plus ``CASH``: the part of the session's gross return each
        position earned (weight held times its return; with ``next_open`` the overnight part
        plus the intraday part grown by the overnight return). Rows sum to ``gross_return``.
    """
    costs = costs or CostModel(commission_bps=cost_bps)
    _check_inputs(weights, returns, cost_bps, execution, aum)
    sessions = returns.index
    r = returns.fillna(0.0).to_numpy(dtype=float)
    rf = np.zeros(len(sessions)) if cash_rate is None else cash_rate.reindex(sessions).fillna(0.0).to_numpy(float)
    target, trade = _trades(weights, returns, rebalance, execution)
    if execution == "next_open":
        path = _open_path(trade, target, r, rf, returns, open_returns)
    else:
        path = _close_path(trade, target, r, rf)
    turnover, impact, cost = session_costs(
        path.delta, path.gross, path.size_at_trade, costs, returns, dollar_volume, volatility, aum
    )
    daily = _daily(path, turnover, impact, cost, rf, returns, safe_assets)
    if not contributions:
        return daily
    return daily, pd.DataFrame(path.part, index=sessions, columns=[*returns.columns, "CASH"])
