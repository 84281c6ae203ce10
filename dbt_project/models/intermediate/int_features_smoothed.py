"""MACD (12/26/9), Wilder's RSI(14) and ADX(14) with +DI/-DI: recursive smoothers.

A dbt Python model because SQL cannot express them exactly: an exponential moving
average is a recursion over every earlier session, which DuckDB window functions cannot
carry (a weighted window would truncate it, and the closed form overflows in double
precision after a few thousand sessions). Each smoother restarts after a missing
session, with its warm-up, so a gap never feeds a stale value forward.

Incremental like the SQL models (macros/incremental.sql, mirrored in ``refresh_bounds``):
per ticker it recomputes the dates from the first ``int_returns`` row written since its
own last run, reading the ``LOOKBACK`` sessions before them. A smoother restarted that
far back differs from the full-history one by at most (1 - alpha)^LOOKBACK of the gap
between their starting states: with the slowest decay here, (13/14)^600 < 1e-19, below
double-precision resolution.
"""

import numpy as np
import pandas as pd
from scipy.signal import lfilter


def wilder_smooth(x: np.ndarray, seed: float, n: int) -> np.ndarray:
    """s_0 = seed, s_t = s_(t-1) (n - 1) / n + x_t / n for t = 1.. (Wilder's average), as a
    first-order linear filter in C rather than a Python loop."""
    decay = (n - 1) / n
    return lfilter([1.0 / n], [1.0, -decay], x, zi=[seed * decay])[0]


def wilder_rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    """Wilder's RSI: averages seeded with the simple mean of the first n changes, then
    avg_t = (avg_{t-1} (n - 1) + x_t) / n. NULL until n changes exist."""
    out = np.full(len(close), np.nan)
    if len(close) <= n:
        return out
    delta = np.diff(close, prepend=np.nan)
    gain, loss = np.clip(delta, 0, None), np.clip(-delta, 0, None)
    seed_gain, seed_loss = gain[1 : n + 1].mean(), loss[1 : n + 1].mean()
    avg_gain = np.concatenate([[seed_gain], wilder_smooth(gain[n + 1 :], seed_gain, n)])
    avg_loss = np.concatenate([[seed_loss], wilder_smooth(loss[n + 1 :], seed_loss, n)])
    with np.errstate(divide="ignore", invalid="ignore"):
        out[n:] = np.where(avg_loss == 0, 100.0, 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    return out


def wilder_adx(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int = 14) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilder's directional movement system (1978): (+DI, -DI, ADX).

    True range and +DM/-DM per session; their n-session Wilder sums start as plain sums of
    the first n values and continue as S_t = S_(t-1) - S_(t-1) / n + x_t; +DI/-DI = 100 DM / TR;
    DX = 100 |+DI - -DI| / (+DI + -DI); ADX starts as the mean of the first n DX values and
    continues as (13 ADX_(t-1) + DX_t) / 14. Needs high and low: NULL for close-only series.
    """
    m = len(c)
    plus_di, minus_di, adx = (np.full(m, np.nan) for _ in range(3))
    if m <= n or np.isnan(h).any() or np.isnan(lo).any():
        return plus_di, minus_di, adx
    up, down = h[1:] - h[:-1], lo[:-1] - lo[1:]
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    tr = np.maximum.reduce([h[1:] - lo[1:], np.abs(h[1:] - c[:-1]), np.abs(lo[1:] - c[:-1])])

    def wilder_sum(x: np.ndarray) -> np.ndarray:
        # a Wilder sum is n times a Wilder average of the same inputs
        seed = x[:n].sum()
        return np.concatenate([[seed], n * wilder_smooth(x[n:], seed / n, n)])

    tr_s, p_s, m_s = wilder_sum(tr), wilder_sum(plus_dm), wilder_sum(minus_dm)  # sessions n .. m-1
    with np.errstate(divide="ignore", invalid="ignore"):
        pdi = np.where(tr_s > 0, 100 * p_s / tr_s, np.nan)
        mdi = np.where(tr_s > 0, 100 * m_s / tr_s, np.nan)
        dx = np.where(pdi + mdi > 0, 100 * np.abs(pdi - mdi) / (pdi + mdi), np.where(np.isnan(pdi), np.nan, 0.0))
    plus_di[n:], minus_di[n:] = pdi, mdi
    if len(dx) >= n:
        seed = dx[:n].mean()
        adx[2 * n - 1 :] = np.concatenate([[seed], wilder_smooth(dx[n:], seed, n)])
    return plus_di, minus_di, adx


def ema(x: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average with alpha = 2 / (span + 1), seeded at the first value and
    NULL until span values have been seen (pandas' ewm(span, adjust=False, min_periods=span))."""
    alpha = 2.0 / (span + 1)
    out = np.full(len(x), np.nan)
    if len(x) == 0:
        return out
    out[0] = x[0]
    out[1:] = lfilter([alpha], [1.0, alpha - 1.0], x[1:], zi=[(1.0 - alpha) * x[0]])[0]
    out[: span - 1] = np.nan
    return out


def macd(close: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """(MACD line, signal line): EMA(fast) - EMA(slow) of the close, NULL until slow closes;
    the signal line is the EMA(signal) of the MACD line from its first value on."""
    line = ema(close, fast) - ema(close, slow)
    signal_line = np.full(len(close), np.nan)
    if len(close) >= slow:
        signal_line[slow - 1 :] = ema(line[slow - 1 :], signal)
    return line, signal_line


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def features(prices: pd.DataFrame) -> pd.DataFrame:
    """MACD, RSI and ADX per ticker, per run of sessions without a missing price."""
    prices = prices.sort_values(["ticker", "date"]).reset_index(drop=True)
    adj, high, low, close = (prices[c].to_numpy(float) for c in ("adj_close", "high", "low", "close"))
    out = {
        c: np.full(len(prices), np.nan)
        for c in ("macd", "macd_signal", "rsi_14", "plus_di_14", "minus_di_14", "adx_14")
    }
    new_ticker = np.ones(len(prices), dtype=bool)
    new_ticker[1:] = prices["ticker"].to_numpy()[1:] != prices["ticker"].to_numpy()[:-1]
    priced = ~np.isnan(adj)
    for start, end in runs(priced):
        # a run of priced sessions ends at a missing price, or where the next ticker begins
        edges = [start, *(np.flatnonzero(new_ticker[start + 1 : end]) + start + 1).tolist(), end]
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            out["macd"][a:b], out["macd_signal"][a:b] = macd(adj[a:b])
            out["rsi_14"][a:b] = wilder_rsi(adj[a:b])
            # ADX needs high and low: run it on each stretch where the source provides them.
            for u, v in runs(~np.isnan(high[a:b]) & ~np.isnan(low[a:b])):
                di = wilder_adx(high[a + u : a + v], low[a + u : a + v], close[a + u : a + v])
                out["plus_di_14"][a + u : a + v], out["minus_di_14"][a + u : a + v], out["adx_14"][a + u : a + v] = di
    frame = prices[["ticker", "date"]].assign(**out)
    frame["macd_hist"] = frame["macd"] - frame["macd_signal"]
    frame["macd_hist_pct"] = frame["macd_hist"] / prices["adj_close"]
    columns = [
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
    return frame[columns]


LOOKBACK = 600


def refresh_bounds(returns, sessions: pd.DataFrame, this: str, session) -> pd.DataFrame | None:
    """Per ticker, (from_date, input_from) of an incremental run, or None for a full build."""
    if "refreshed_at" not in session.sql(f"select * from {this} limit 0").columns:
        return None
    watermark = session.execute(f"select coalesce(max(refreshed_at), timestamp '0001-01-01') from {this}").fetchall()[
        0
    ][0]
    changed = returns.query(
        "returns",
        f"select ticker, min(date) as changed_from from returns where refreshed_at > '{watermark}' group by ticker",
    ).df()
    index = sessions.set_index("date")["session_index"]
    by_index = sessions.set_index("session_index")["date"]
    # before the first session there is nothing to read: start there
    start = np.maximum(index.loc[changed["changed_from"]].to_numpy() - LOOKBACK, by_index.index.min())
    changed["input_from"] = by_index.loc[start].to_numpy()
    return changed.rename(columns={"changed_from": "from_date"})


def model(dbt, session):
    dbt.config(materialized="incremental")
    returns = dbt.ref("int_returns")
    columns = ["ticker", "date", "high", "low", "close", "adj_close"]
    bounds = None
    if dbt.is_incremental:
        bounds = refresh_bounds(returns, dbt.ref("int_sessions").df(), str(dbt.this), session)
    if bounds is None:
        out = features(returns.df()[columns])
    else:
        first = bounds["input_from"].min() if len(bounds) else pd.Timestamp("9999-12-31")
        prices = returns.filter(f"date >= DATE '{first.date()}'").df()[columns]
        prices = prices.merge(bounds, on="ticker")
        prices = prices[prices["date"] >= prices["input_from"]]
        out = features(prices[columns]).merge(bounds[["ticker", "from_date"]], on="ticker")
        out = out[out["date"] >= out["from_date"]].drop(columns="from_date")
    # stamped with the input's state, never later than the run: see macros/incremental.sql
    stamp = returns.query("returns", "select max(refreshed_at) from returns").fetchall()[0][0]
    return out.assign(refreshed_at=stamp)
