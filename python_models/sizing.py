"""Position sizing: fractional Kelly with per-position caps and a gross-exposure limit."""

from __future__ import annotations

import numpy as np
import pandas as pd


def kelly_weights(
    expected_return: pd.DataFrame,
    std: pd.DataFrame,
    fraction: float = 0.5,
    cap: float = 0.10,
    max_gross: float = 1.0,
    long_only: bool = True,
) -> pd.DataFrame:
    """Target weights from forecast mean and standard deviation of the same horizon.

    The growth-optimal fraction for a small simple return with mean ``mu`` and variance
    ``s^2`` is ``mu / s^2``; it does not depend on the horizon when returns are iid, so
    any horizon's forecast serves. Each weight is ``fraction * mu / s^2``, clipped to
    ``[0, cap]`` (``[-cap, cap]`` if shorts are allowed); if the gross exposure of a date
    exceeds ``max_gross`` all its weights are scaled down together. The rest is cash.
    Missing or non-positive ``std`` gives weight 0.

    Parameters
    ----------
    expected_return, std : pandas.DataFrame
        Dates by tickers, aligned.
    fraction : float
        Kelly multiplier in (0, 1].
    cap : float
        Largest absolute weight per position.
    max_gross : float
        Largest sum of absolute weights per date.
    long_only : bool
        Forbid short positions.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    if not 0.0 < cap <= max_gross:
        raise ValueError(f"need 0 < cap <= max_gross, got cap={cap}, max_gross={max_gross}")
    mu, sd = expected_return.align(std, join="outer")
    ok = (sd > 0) & np.isfinite(sd) & np.isfinite(mu)
    raw = (fraction * mu / sd.where(ok) ** 2).where(ok, 0.0)
    w = raw.clip(lower=0.0 if long_only else -cap, upper=cap)
    gross = w.abs().sum(axis=1)
    scale = (max_gross / gross).where(gross > max_gross, 1.0)
    return w.mul(scale, axis=0)


CASH = "CASH"


def kelly_book(signals: pd.DataFrame, fraction: float = 0.5, cap: float = 0.10, max_gross: float = 1.0) -> pd.DataFrame:
    """Long allocations (strategy, date, ticker, weight, sleeve) from per-strategy signals.

    ``signals`` has ``strategy, ticker, date, expected_return, forecast_std``; weights are
    :func:`kelly_weights` per strategy. Each date's uninvested remainder is a ``CASH`` row
    in the safe sleeve, so weights sum to one.
    """
    need = {"strategy", "ticker", "date", "expected_return", "forecast_std"}
    if need - set(signals.columns):
        raise ValueError(f"signals lack columns {sorted(need - set(signals.columns))}")
    frames = []
    for strategy, g in signals.groupby("strategy", sort=True):
        mu = g.pivot(index="date", columns="ticker", values="expected_return")
        sd = g.pivot(index="date", columns="ticker", values="forecast_std")
        w = kelly_weights(mu, sd, fraction=fraction, cap=cap, max_gross=max_gross)
        long = w.rename_axis(index="date", columns="ticker").stack().rename("weight").reset_index()
        cash = (1.0 - w.sum(axis=1)).rename("weight").rename_axis("date").reset_index().assign(ticker=CASH)
        frames.append(pd.concat([long.assign(sleeve="risky"), cash.assign(sleeve="safe")]).assign(strategy=strategy))
    out = pd.concat(frames, ignore_index=True)[["strategy", "date", "ticker", "weight", "sleeve"]]
    return out.sort_values(["strategy", "date", "ticker"]).reset_index(drop=True)
