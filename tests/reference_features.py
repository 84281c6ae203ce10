"""Independent pandas implementations of the dbt features, for cross-checks in tests."""

import numpy as np
import pandas as pd

ANN = np.sqrt(252)


def textbook_rsi(close: pd.Series, n: int = 14) -> pd.Series:
    """Wilder (1978): first averages are simple means of n changes, then Wilder smoothing."""
    delta = close.diff()
    gain, loss = delta.clip(lower=0), (-delta).clip(lower=0)
    rsi = pd.Series(np.nan, index=close.index)
    ag, al = gain.iloc[1 : n + 1].mean(), loss.iloc[1 : n + 1].mean()
    for i in range(n, len(close)):
        if i > n:
            ag = (ag * (n - 1) + gain.iloc[i]) / n
            al = (al * (n - 1) + loss.iloc[i]) / n
        rsi.iloc[i] = 100 - 100 / (1 + ag / al) if al > 0 else 100.0
    return rsi


def textbook_ema(x: pd.Series, span: int) -> pd.Series:
    """EMA seeded at the first value, alpha = 2 / (span + 1); NULL for the first span - 1 values."""
    alpha = 2 / (span + 1)
    out = np.full(len(x), np.nan)
    values = x.to_numpy(float)
    first = np.flatnonzero(~np.isnan(values))[0]
    level = values[first]
    for i in range(first, len(values)):
        level = values[i] if i == first else alpha * values[i] + (1 - alpha) * level
        if i - first + 1 >= span:
            out[i] = level
    return pd.Series(out, index=x.index)


def ticker_features(g: pd.DataFrame, market: pd.DataFrame) -> pd.DataFrame:
    """Features of one ticker from a frame indexed by date with open/high/low/close/adj_close/volume."""
    p = g["adj_close"]
    lr = np.log(p).diff()
    r = p.pct_change(fill_method=None)
    out = pd.DataFrame(index=g.index)
    for n in (1, 5, 21, 63, 126, 252):
        out[f"ret_{n}d"] = p / p.shift(n) - 1
    out["momentum_1_20"] = p.shift(1) / p.shift(20) - 1
    sma, sd = p.rolling(20).mean(), p.rolling(20).std()
    out["bollinger_position"] = (p - (sma - 2 * sd)) / (4 * sd)
    out["dist_52w_high"] = p / p.rolling(252).max() - 1
    out["dist_52w_low"] = p / p.rolling(252).min() - 1
    sma50, sma200 = p.rolling(50).mean(), p.rolling(200).mean()
    out["trend_regime"] = np.sign(sma50 - sma200)
    for k in range(1, 6):
        out[f"ret_lag_{k}"] = r.shift(k)
    for n in (10, 21, 63):
        out[f"realized_vol_{n}"] = lr.rolling(n).std() * ANN
    out["volatility_ratio_10_63"] = lr.rolling(10).std() / lr.rolling(63).std()
    out["downside_vol_21"] = np.sqrt((np.minimum(lr, 0) ** 2).rolling(21).mean() * 252)
    hl, co = np.log(g["high"] / g["low"]), np.log(g["close"] / g["open"])
    out["parkinson_vol_21"] = np.sqrt((hl**2).rolling(21).mean() / (4 * np.log(2)) * 252)
    out["garman_klass_vol_21"] = np.sqrt((0.5 * hl**2 - (2 * np.log(2) - 1) * co**2).rolling(21).mean() * 252)
    out["drawdown"] = p / p.cummax() - 1
    out["autocorr_1_63"] = lr.rolling(63).corr(lr.shift(1))
    out["skew_63"] = lr.rolling(63).skew()
    out["kurtosis_63"] = lr.rolling(63).kurt()
    ema12, ema26 = textbook_ema(p, 12), textbook_ema(p, 26)
    out["macd"] = ema12 - ema26
    out["macd_signal"] = textbook_ema(out["macd"], 9)
    out["macd_hist"] = out["macd"] - out["macd_signal"]
    out["rsi_14"] = textbook_rsi(p)
    v = g["volume"]
    out["volume_zscore_21"] = (v - v.rolling(21).mean()) / v.rolling(21).std()
    out["dollar_volume"] = g["close"] * v
    m = market.reindex(g.index)
    out["market_return_1d"] = m["market_return_1d"]
    mlr = m["market_log_return"]
    out["beta_63"] = lr.rolling(63).cov(mlr) / mlr.rolling(63).var()
    vol21 = out["realized_vol_21"]
    out["vol_regime_pct_252"] = vol21.rolling(252).apply(lambda a: np.mean(a <= a[-1]), raw=True)
    return out


def textbook_adx(high: pd.Series, low: pd.Series, close: pd.Series, n: int = 14) -> pd.DataFrame:
    """Wilder's ADX written out session by session (New Concepts in Technical Trading Systems, 1978)."""
    rows = []
    tr_n = pdm_n = mdm_n = adx = None
    dxs = []
    for t in range(len(close)):
        if t == 0:
            rows.append((np.nan, np.nan, np.nan))
            continue
        up_move = high.iloc[t] - high.iloc[t - 1]
        down_move = low.iloc[t - 1] - low.iloc[t]
        pdm = up_move if up_move > down_move and up_move > 0 else 0.0
        mdm = down_move if down_move > up_move and down_move > 0 else 0.0
        tr = max(
            high.iloc[t] - low.iloc[t], abs(high.iloc[t] - close.iloc[t - 1]), abs(low.iloc[t] - close.iloc[t - 1])
        )
        if t < n:
            rows.append((np.nan, np.nan, np.nan))
            tr_n = (tr_n or 0.0) + tr
            pdm_n = (pdm_n or 0.0) + pdm
            mdm_n = (mdm_n or 0.0) + mdm
            continue
        if t == n:
            tr_n, pdm_n, mdm_n = tr_n + tr, pdm_n + pdm, mdm_n + mdm
        else:
            tr_n, pdm_n, mdm_n = tr_n - tr_n / n + tr, pdm_n - pdm_n / n + pdm, mdm_n - mdm_n / n + mdm
        pdi, mdi = 100 * pdm_n / tr_n, 100 * mdm_n / tr_n
        dxs.append(100 * abs(pdi - mdi) / (pdi + mdi))
        if len(dxs) == n:
            adx = float(np.mean(dxs))
        elif len(dxs) > n:
            adx = (adx * (n - 1) + dxs[-1]) / n
        rows.append((pdi, mdi, adx if len(dxs) >= n else np.nan))
    return pd.DataFrame(rows, index=close.index, columns=["plus_di_14", "minus_di_14", "adx_14"])
