"""Multi-asset books: the regime-aware Kelly barbell and risk parity.

Both decide every ``every`` sessions from what is known at that close (the book drifts in
between) and use a covariance forecast: the Ledoit–Wolf shrunk covariance of the trailing
``window`` daily returns up to and including the close (:func:`trailing_covariance`).

* :func:`barbell_book` — the risky sleeve is the constrained multi-asset fractional Kelly
  portfolio (:func:`python_models.portfolio.sizing.kelly_portfolio`) of the tradable signals: expected
  returns shrunk by confidence (:func:`python_models.portfolio.sizing.confidence_scale`), and a covariance
  whose volatilities are the forecasters' predictive standard deviations and whose correlations
  come from the trailing covariance; its gross is capped by the barbell's risky share of the
  date. The safe sleeve (the rest) is split between the bond proxy and cash.
* :func:`risk_parity_book` — equal risk contributions over every ticker priced on the trailing
  window, clipped at the position cap (the clipped weight stays in cash). It ignores the
  forecasts: the signal-free alternative to compare against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from python_models.portfolio.sizing import confidence_scale, kelly_portfolio, risk_parity_weights

BOND = "BOND"


def trailing_covariance(returns: pd.DataFrame, date, window: int = 252, min_obs: int | None = None):
    """Ledoit–Wolf covariance of daily returns over the ``window`` sessions ending at ``date``
    (inclusive), for the tickers with at least ``min_obs`` (default ``window``) returns there and
    a return on ``date``. Returns ``(tickers, covariance)``; missing returns are treated as 0."""
    from sklearn.covariance import ledoit_wolf

    if window < 20:
        raise ValueError(f"window must be at least 20 sessions, got {window}")
    need = window if min_obs is None else min_obs
    end = returns.index.get_loc(date) + 1
    past = returns.iloc[max(end - window, 0) : end]
    if len(past) < need:
        return [], np.zeros((0, 0))
    keep = past.columns[(past.notna().sum() >= need) & past.iloc[-1].notna()]
    if len(keep) == 0:
        return [], np.zeros((0, 0))
    cov, _ = ledoit_wolf(past[keep].fillna(0.0).to_numpy(dtype=float))
    return list(keep), cov


def _decision_dates(dates: pd.DatetimeIndex, every: int, after=None) -> pd.DatetimeIndex:
    """Every ``every``-th of ``dates`` from the first, and of those only the ones after ``after``
    (the grid stays anchored at the first date, so a book extended later decides on the same days)."""
    if every < 1:
        raise ValueError(f"every must be a positive number of sessions, got {every}")
    grid = pd.DatetimeIndex(sorted(dates))[::every]
    return grid if after is None else grid[grid > pd.Timestamp(after)]


def barbell_book(
    signals: pd.DataFrame,
    returns: pd.DataFrame,
    risky_share: pd.Series,
    bond_share: pd.Series,
    *,
    fraction: float = 0.5,
    cap: float = 0.10,
    min_confidence: float = 0.55,
    every: int = 5,
    window: int = 252,
    dates: pd.DatetimeIndex | None = None,
    after=None,
) -> pd.DataFrame:
    """Decisions (dates by tickers, plus :data:`BOND`) of the Kelly barbell.

    Parameters
    ----------
    signals : pandas.DataFrame
        ``date, ticker, expected_return, forecast_std, confidence, tradable``, mean and standard
        deviation of the same horizon (the Kelly fraction does not depend on it).
    returns : pandas.DataFrame
        Daily simple returns, sessions by tickers.
    risky_share, bond_share : pandas.Series
        Per date: the barbell's largest risky gross, and the safe sleeve's share in the bond.
    dates : pandas.DatetimeIndex, optional
        Every signal date of the book, on which the decision grid is laid (default: the dates
        of ``signals``).
    after : date, optional
        Decide only on grid dates after this one (extending a stored book); ``signals`` then
        needs those dates only.
    """
    need = {"date", "ticker", "expected_return", "forecast_std", "confidence", "tradable"}
    if need - set(signals.columns):
        raise ValueError(f"signals lack columns {sorted(need - set(signals.columns))}")
    by_date = {d: g for d, g in signals.groupby("date")}
    rows: dict[pd.Timestamp, dict[str, float]] = {}
    for date in _decision_dates(pd.DatetimeIndex(list(by_date) if dates is None else dates), every, after):
        if date not in by_date:
            raise ValueError(f"no signals on the decision date {date.date()}")
        g = by_date[date]
        mu = g["expected_return"].to_numpy(float) * confidence_scale(g["confidence"].to_numpy(float), min_confidence)
        ok = g["tradable"].to_numpy(bool) & (mu > 0) & (g["forecast_std"].to_numpy(float) > 0)
        tickers, cov = trailing_covariance(returns, date, window)
        ok &= g["ticker"].isin(tickers).to_numpy()
        share = float(risky_share.get(date, 0.0))
        w: dict[str, float] = {}
        if ok.any() and share > 0:
            chosen = g.loc[ok, "ticker"].tolist()
            idx = [tickers.index(t) for t in chosen]
            sd = np.sqrt(np.diag(cov)[idx])
            corr = cov[np.ix_(idx, idx)] / np.outer(sd, sd)
            fsd = g.loc[ok, "forecast_std"].to_numpy(float)
            sigma = corr * np.outer(fsd, fsd)
            weights = kelly_portfolio(mu[ok], sigma, fraction=fraction, cap=cap, max_gross=max(share, cap))
            weights = weights * min(1.0, share / max(weights.sum(), 1e-12))
            w = {t: float(x) for t, x in zip(chosen, weights, strict=True) if x > 1e-6}
        safe = 1.0 - sum(w.values())
        w[BOND] = safe * float(bond_share.get(date, 0.0))
        rows[date] = w
    return _frame(rows)


def _frame(rows: dict[pd.Timestamp, dict[str, float]]) -> pd.DataFrame:
    """Decisions as dates by tickers, columns sorted (sums over a row then do not depend on the
    order tickers first appeared, so a book extended later adds up to the same bits)."""
    frame = pd.DataFrame.from_dict(rows, orient="index").fillna(0.0).sort_index()
    return frame.sort_index(axis=1).rename_axis(index=None, columns=None)


def risk_parity_book(
    returns: pd.DataFrame,
    dates: pd.DatetimeIndex,
    *,
    cap: float = 0.10,
    every: int = 5,
    window: int = 252,
    after=None,
) -> pd.DataFrame:
    """Decisions (dates by tickers) of equal-risk-contribution weights, clipped at ``cap``, on
    every ``every``-th of ``dates`` (after ``after`` only, when given)."""
    rows: dict[pd.Timestamp, dict[str, float]] = {}
    for date in _decision_dates(dates, every, after):
        tickers, cov = trailing_covariance(returns, date, window)
        if not tickers:
            rows[date] = {}
            continue
        w = np.minimum(risk_parity_weights(cov), cap)
        rows[date] = dict(zip(tickers, w, strict=True))
    return _frame(rows)
