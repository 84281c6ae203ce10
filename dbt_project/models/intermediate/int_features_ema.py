"""MACD (12/26/9) and Wilder's RSI(14): recursive smoothers.

A dbt Python model because SQL cannot express them exactly: an exponential moving
average is a recursion over every earlier session, which DuckDB window functions cannot
carry (a weighted window would truncate it, and the closed form overflows in double
precision after a few thousand sessions). Each smoother restarts after a missing
session, with its warm-up, so a gap never feeds a stale value forward.
"""

import numpy as np
import pandas as pd


def wilder_rsi(close: pd.Series, n: int = 14) -> pd.Series:
    """Wilder's RSI: averages seeded with the simple mean of the first n changes, then
    avg_t = (avg_{t-1} (n - 1) + x_t) / n. NULL until n changes exist."""
    delta = close.diff().to_numpy()
    out = np.full(len(close), np.nan)
    if len(close) <= n:
        return pd.Series(out, index=close.index)
    gain, loss = np.clip(delta, 0, None), np.clip(-delta, 0, None)
    avg_gain, avg_loss = gain[1 : n + 1].mean(), loss[1 : n + 1].mean()
    for t in range(n, len(close)):
        if t > n:
            avg_gain = (avg_gain * (n - 1) + gain[t]) / n
            avg_loss = (avg_loss * (n - 1) + loss[t]) / n
        out[t] = 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return pd.Series(out, index=close.index)


def macd(close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9) -> pd.DataFrame:
    """EMAs with alpha = 2 / (span + 1) seeded at the first close; each NULL until it has
    seen span values (the signal line: span MACD values)."""
    ema_fast = close.ewm(span=fast, adjust=False, min_periods=fast).mean()
    ema_slow = close.ewm(span=slow, adjust=False, min_periods=slow).mean()
    line = ema_fast - ema_slow
    signal_line = line.ewm(span=signal, adjust=False, min_periods=signal).mean()
    return pd.DataFrame({"macd": line, "macd_signal": signal_line, "macd_hist": line - signal_line})


def features(prices: pd.DataFrame) -> pd.DataFrame:
    """MACD and RSI per ticker, per run of sessions without a missing price."""
    prices = prices.sort_values(["ticker", "date"]).reset_index(drop=True)
    run = prices["adj_close"].isna().groupby(prices["ticker"]).cumsum()
    frames = []
    for (_, _), g in prices.groupby([prices["ticker"], run], sort=False):
        g = g[g["adj_close"].notna()]
        if g.empty:
            continue
        close = g["adj_close"].astype(float)
        block = macd(close)
        block["rsi_14"] = wilder_rsi(close)
        block["ticker"], block["date"] = g["ticker"], g["date"]
        frames.append(block)
    out = (
        pd.concat(frames)
        if frames
        else pd.DataFrame(columns=["ticker", "date", "macd", "macd_signal", "macd_hist", "rsi_14"])
    )
    out = prices[["ticker", "date", "adj_close"]].merge(out, on=["ticker", "date"], how="left")
    out["macd_hist_pct"] = out["macd_hist"] / out["adj_close"]
    return out[["ticker", "date", "macd", "macd_signal", "macd_hist", "macd_hist_pct", "rsi_14"]]


def model(dbt, session):
    dbt.config(materialized="table")
    prices = dbt.ref("int_returns").df()[["ticker", "date", "adj_close"]]
    return features(prices)
