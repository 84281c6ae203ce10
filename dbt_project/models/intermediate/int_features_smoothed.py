"""MACD (12/26/9), Wilder's RSI(14) and ADX(14) with +DI/-DI: recursive smoothers.

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


def wilder_adx(high: pd.Series, low: pd.Series, close: pd.Series, n: int = 14) -> pd.DataFrame:
    """Wilder's directional movement system (1978).

    True range and +DM/-DM per session; their n-session Wilder sums start as plain sums of
    the first n values and continue as S_t = S_(t-1) - S_(t-1) / n + x_t; +DI/-DI = 100 DM / TR;
    DX = 100 |+DI - -DI| / (+DI + -DI); ADX starts as the mean of the first n DX values and
    continues as (13 ADX_(t-1) + DX_t) / 14. Needs high and low: NULL for close-only series.
    """
    h, lo, c = (x.to_numpy(float) for x in (high, low, close))
    m = len(c)
    plus_di, minus_di, adx = (np.full(m, np.nan) for _ in range(3))
    if m <= n or np.isnan(h).any() or np.isnan(lo).any():
        return pd.DataFrame({"plus_di_14": plus_di, "minus_di_14": minus_di, "adx_14": adx}, index=close.index)
    up, down = h[1:] - h[:-1], lo[:-1] - lo[1:]
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    tr = np.maximum.reduce([h[1:] - lo[1:], np.abs(h[1:] - c[:-1]), np.abs(lo[1:] - c[:-1])])
    tr_s, p_s, m_s = tr[:n].sum(), plus_dm[:n].sum(), minus_dm[:n].sum()
    dx = []
    for i in range(n - 1, m - 1):  # i indexes the changes; the session is i + 1
        if i > n - 1:
            tr_s += tr[i] - tr_s / n
            p_s += plus_dm[i] - p_s / n
            m_s += minus_dm[i] - m_s / n
        if tr_s <= 0:
            dx.append(np.nan)
            continue
        pdi, mdi = 100 * p_s / tr_s, 100 * m_s / tr_s
        plus_di[i + 1], minus_di[i + 1] = pdi, mdi
        dx.append(100 * abs(pdi - mdi) / (pdi + mdi) if pdi + mdi > 0 else 0.0)
        if len(dx) == n:
            adx[i + 1] = np.mean(dx)
        elif len(dx) > n:
            adx[i + 1] = (adx[i] * (n - 1) + dx[-1]) / n
    return pd.DataFrame({"plus_di_14": plus_di, "minus_di_14": minus_di, "adx_14": adx}, index=close.index)


def macd(close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9) -> pd.DataFrame:
    """EMAs with alpha = 2 / (span + 1) seeded at the first close; each NULL until it has
    seen span values (the signal line: span MACD values)."""
    ema_fast = close.ewm(span=fast, adjust=False, min_periods=fast).mean()
    ema_slow = close.ewm(span=slow, adjust=False, min_periods=slow).mean()
    line = ema_fast - ema_slow
    signal_line = line.ewm(span=signal, adjust=False, min_periods=signal).mean()
    return pd.DataFrame({"macd": line, "macd_signal": signal_line, "macd_hist": line - signal_line})


def features(prices: pd.DataFrame) -> pd.DataFrame:
    """MACD, RSI and ADX per ticker, per run of sessions without a missing price."""
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
        # ADX needs high and low: run it on each stretch where the source provides them.
        has_range = g["high"].notna() & g["low"].notna()
        stretch = (has_range != has_range.shift()).cumsum()
        adx = [wilder_adx(s["high"], s["low"], s["close"]) for _, s in g[has_range].groupby(stretch[has_range])]
        block = block.join(pd.concat(adx) if adx else pd.DataFrame(columns=["plus_di_14", "minus_di_14", "adx_14"]))
        block["ticker"], block["date"] = g["ticker"], g["date"]
        frames.append(block)
    columns = ["ticker", "date", "macd", "macd_signal", "macd_hist", "rsi_14", "plus_di_14", "minus_di_14", "adx_14"]
    out = pd.concat(frames) if frames else pd.DataFrame(columns=columns)
    out = prices[["ticker", "date", "adj_close"]].merge(out, on=["ticker", "date"], how="left")
    out["macd_hist_pct"] = out["macd_hist"] / out["adj_close"]
    return out[
        [
            "ticker",
            "date",
            "macd",
            "macd_signal",
            "macd_hist",
            "macd_hist_pct",
            "rsi_14",
            "plus_di_14",
            "minus_di_14",
            "adx_14",
        ]
    ]


def model(dbt, session):
    dbt.config(materialized="table")
    prices = dbt.ref("int_returns").df()[["ticker", "date", "high", "low", "close", "adj_close"]]
    return features(prices)
