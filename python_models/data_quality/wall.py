"""The data-quality wall for incoming daily prices: normalise, then pass, repair or quarantine.

Every row a source sends ends in exactly one place: on to the warehouse (perhaps repaired,
with a flag saying how) or in quarantine with a reason and the row as it was received.
Nothing is silently dropped or changed. Findings that are not rows (a session missing against
the exchange calendar, a ticker that sent nothing, identical duplicates collapsed) go to the
report. :func:`screen_prices` applies the rules below, in this order:

=======================  ==============================================  ==========
rule                     what it catches                                 outcome
=======================  ==============================================  ==========
``non_numeric``          a price or volume that does not parse           quarantine
``bad_date``             a date that does not parse                      quarantine
``missing_close``        no close (a NaN row)                            quarantine
``non_positive_price``   a price <= 0                                    quarantine
``inconsistent_ohlc``    high < low, or close outside [low, high]        quarantine
``duplicate_conflict``   one (ticker, date) sent twice with other values quarantine
``unfinished_bar``       today's bar before the close, or a future date  quarantine
``timezone_shifted``     a ticker's dates fall off the calendar but one  repair (date
                         day later (or earlier) they fit it              shifted), flag
``unit_jump``            a close ~100x (or 1/100) its recent level       quarantine
``split_jump``           the adjusted close jumps by a split ratio       quarantine
``adj_close_mismatch``   adj_close / close moves > 25 % without a split  quarantine
``zero_volume_move``     volume 0 while the price moved                  repair (volume
                                                                         NULL), flag
=======================  ==============================================  ==========

A close that jumps by a split ratio while the adjusted close stays smooth is a correctly
adjusted split and passes. Schema drift (renamed, missing or MultiIndex columns) is handled by
:func:`normalise_columns`: known aliases are renamed, yfinance-style ``(field, ticker)``
columns are unstacked, and a frame without a date or close column is refused with
:class:`SchemaError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

PRICE_FIELDS = ("open", "high", "low", "close", "adj_close", "volume")
COLUMNS = ("ticker", "date", *PRICE_FIELDS, "source")
QUARANTINE_COLUMNS = ("ticker", "date", "source", "reason", "detail", "row_json")
REPORT_COLUMNS = ("ticker", "source", "check_name", "count", "detail")

ALIASES = {
    "adj close": "adj_close",
    "adjclose": "adj_close",
    "adjusted_close": "adj_close",
    "adjusted close": "adj_close",
    "adj_close": "adj_close",
    "symbol": "ticker",
    "timestamp": "date",
    "datetime": "date",
    "vol": "volume",
}
#: Ratios a split (or reverse split) moves a price by. 3:2 splits are left out on purpose: real
#: one-day moves of +50 % or -33 % happen (AMD on 2016-04-22: +52 % on earnings) and would be
#: taken for one.
SPLIT_RATIOS = (2.0, 3.0, 4.0, 5.0, 10.0, 0.5, 1 / 3, 0.25, 0.2, 0.1)
#: |log| distance to a split ratio within which a jump counts as one.
SPLIT_TOLERANCE = 0.03
#: Band of a close's ratio to its recent level that is a units error (pence for pounds, cents for dollars).
UNIT_JUMP_BAND = (50.0, 200.0)
#: Sessions of accepted closes behind the "recent level" of the unit-jump rule.
UNIT_JUMP_WINDOW = 10
#: Largest day-over-day change of adj_close / close that is not a corporate action.
ADJ_RATIO_TOLERANCE = np.log(1.25)
#: The session's close in New York; a bar dated today is unfinished before it.
MARKET_CLOSE_HOUR = 16


class SchemaError(ValueError):
    """The frame lacks a column the wall cannot do without, or has columns it cannot map."""


@dataclass(frozen=True)
class Screened:
    """What :func:`screen_prices` makes of a frame.

    ``clean`` has :data:`COLUMNS` plus ``flags`` (comma-separated repairs, empty for none);
    ``quarantine`` has :data:`QUARANTINE_COLUMNS` (``row`` the row as received, JSON);
    ``report`` has :data:`REPORT_COLUMNS`.
    """

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    report: pd.DataFrame


def normalise_columns(frame: pd.DataFrame, ticker: str | None = None) -> pd.DataFrame:
    """Lower-case, snake-case and de-alias the columns; unstack ``(field, ticker)`` MultiIndex
    columns (yfinance's multi-ticker layout) into a long frame; move a date index into a column.

    ``ticker`` names the frame's ticker when it has no ticker column. Raises
    :class:`SchemaError` when ``date`` or ``close`` is missing.
    """
    out = frame.copy()
    if isinstance(out.columns, pd.MultiIndex):
        if out.columns.nlevels != 2:
            raise SchemaError(f"cannot read {out.columns.nlevels}-level columns")
        fields = {str(v).strip().lower() for v in out.columns.get_level_values(0)}
        level = 0 if fields & {"close", "adj close", "open"} else 1
        out = out.stack(level=1 - level, future_stack=True).rename_axis([out.index.name or "date", "ticker"])
        out = out.reset_index()
    elif isinstance(out.index, pd.DatetimeIndex) or str(out.index.name).lower() in ("date", "datetime", "timestamp"):
        out = out.rename_axis(out.index.name or "date").reset_index()
    names = []
    for c in out.columns:
        key = str(c).strip().lower()
        key = ALIASES.get(key, key).replace(" ", "_")
        names.append(ALIASES.get(key, key))
    out.columns = names
    if out.columns.duplicated().any():
        raise SchemaError(f"columns collide after normalising: {sorted(out.columns[out.columns.duplicated()])}")
    missing = {"date", "close"} - set(out.columns)
    if missing:
        raise SchemaError(f"missing required columns {sorted(missing)}; got {list(frame.columns)[:12]}")
    if "ticker" not in out.columns:
        if ticker is None:
            raise SchemaError("no ticker column and no ticker given")
        out["ticker"] = ticker
    if "adj_close" not in out.columns:
        out["adj_close"] = out["close"]
    for col in ("open", "high", "low", "volume"):
        if col not in out.columns:
            out[col] = np.nan
    return out


def _rows_as_received(frame: pd.DataFrame) -> pd.Series:
    return frame.apply(lambda r: json.dumps({k: None if pd.isna(v) else str(v) for k, v in r.items()}), axis=1)


def _near_split(log_ratio: np.ndarray) -> np.ndarray:
    ratios = np.log(np.asarray(SPLIT_RATIOS))
    return (np.abs(log_ratio[:, None] - ratios[None, :]) < SPLIT_TOLERANCE).any(axis=1)


def _shift_to_calendar(dates: pd.Series, sessions: pd.DatetimeIndex) -> int:
    """Days (+1 or -1) that put a ticker's dates on the calendar when they are off it, or 0.

    Dates a day early (a session's UTC midnight read as New York time) still fall on weekdays
    four times in five, so the test is not "mostly off the calendar" but "almost all on it
    once shifted, and clearly not as they are"."""
    inside = dates.isin(sessions).mean()
    if inside >= 0.9:
        return 0
    for days in (1, -1):
        if (dates + pd.Timedelta(days=days)).isin(sessions).mean() >= 0.98:
            return days
    return 0


def screen_prices(
    frame: pd.DataFrame,
    source: str,
    sessions: pd.DatetimeIndex | None = None,
    now: pd.Timestamp | None = None,
    requested: list[str] | None = None,
) -> Screened:
    """Screen a price frame (already through :func:`normalise_columns`) from ``source``.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``ticker``, ``date``, the price fields; values may be strings.
    source : str
        Source name, stored with every row.
    sessions : pandas.DatetimeIndex, optional
        Exchange sessions covering the data (timezone shifts and missing sessions need them).
    now : pandas.Timestamp, optional
        The current time (timezone-aware or New York local); the bar of a session that has not
        closed yet is unfinished. Defaults to the clock.
    requested : list of str, optional
        Tickers asked for: one that sent nothing is reported as ``no_data``.
    """
    received = frame.reset_index(drop=True).copy()
    reasons = pd.Series(pd.NA, index=received.index, dtype="object")
    details = pd.Series("", index=received.index, dtype="object")
    flags = pd.Series("", index=received.index, dtype="object")
    report: list[dict] = []

    def reject(mask, reason: str, detail="") -> None:
        fresh = pd.Series(mask, index=received.index).fillna(False).astype(bool) & reasons.isna()
        reasons[fresh] = reason
        details[fresh] = detail if isinstance(detail, str) else pd.Series(detail, index=received.index)[fresh]

    data = received.copy()
    data["ticker"] = data["ticker"].astype(str).str.strip().str.upper()
    for col in PRICE_FIELDS:
        raw = data[col]
        parsed = pd.to_numeric(raw, errors="coerce")
        bad = raw.notna() & raw.astype(str).str.strip().ne("") & parsed.isna()
        reject(bad, "non_numeric", f"{col} does not parse")
        data[col] = parsed.astype(float)
    dates = pd.to_datetime(data["date"], errors="coerce", utc=False, format="mixed")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert("America/New_York").dt.tz_localize(None)
    reject(dates.isna(), "bad_date", "date does not parse")
    data["date"] = dates.dt.normalize()
    reject(data["close"].isna(), "missing_close", "no close")
    prices = data[["open", "high", "low", "close", "adj_close"]]
    reject((prices <= 0).any(axis=1), "non_positive_price", "a price <= 0")
    high_low = data["high"].notna() & data["low"].notna()
    inconsistent = high_low & (
        (data["high"] < data["low"])
        | (data["close"] > data["high"] * (1 + 1e-9))
        | (data["close"] < data["low"] * (1 - 1e-9))
    )
    reject(inconsistent, "inconsistent_ohlc", "high < low or close outside [low, high]")

    # duplicates among the rows still standing: identical ones collapse, conflicting ones go
    alive = reasons.isna()
    key = data.loc[alive, ["ticker", "date"]]
    values = pd.util.hash_pandas_object(data.loc[alive, list(PRICE_FIELDS)].round(10), index=False)
    groups = pd.DataFrame({"ticker": key["ticker"], "date": key["date"], "v": values})
    size = groups.groupby(["ticker", "date"])["v"].transform("size")
    distinct = groups.groupby(["ticker", "date"])["v"].transform("nunique")
    reject(groups.index[(size > 1) & (distinct > 1)].to_series().reindex(received.index).notna(), "duplicate_conflict")
    copies = groups[(size > 1) & (distinct == 1)]
    extra = copies.index[copies.duplicated(["ticker", "date"], keep="first")]
    for ticker, n in pd.Series(1, index=extra).groupby(data.loc[extra, "ticker"]).size().items():
        report.append(
            {"ticker": ticker, "check_name": "duplicate_identical", "count": int(n), "detail": "kept one copy"}
        )
    collapsed = pd.Series(False, index=received.index)
    collapsed[extra] = True

    clock = pd.Timestamp.now(tz="America/New_York") if now is None else pd.Timestamp(now)
    if clock.tzinfo is not None:
        clock = clock.tz_convert("America/New_York").tz_localize(None)
    today = clock.normalize()
    unfinished = (data["date"] > today) | ((data["date"] == today) & (clock.hour < MARKET_CLOSE_HOUR))
    reject(unfinished, "unfinished_bar", f"dated on or after {today.date()} before the close")

    if sessions is not None and len(sessions):
        cal = pd.DatetimeIndex(sessions).normalize()
        alive = reasons.isna() & ~collapsed
        for idx in data.loc[alive].groupby("ticker").groups.values():
            days = _shift_to_calendar(data.loc[idx, "date"], cal)
            if days:
                data.loc[idx, "date"] = data.loc[idx, "date"] + pd.Timedelta(days=days)
                flags[idx] = flags[idx] + f"timezone_shifted({days:+d}d),"

    # sequential rules, per ticker, over the rows still standing in date order
    alive = reasons.isna() & ~collapsed
    ordered = data.loc[alive].sort_values(["ticker", "date"])
    for _, g in ordered.groupby("ticker", sort=False):
        close = g["close"].to_numpy()
        level = pd.Series(close).shift(1).rolling(UNIT_JUMP_WINDOW, min_periods=1).median().to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = close / level
        lo, hi = UNIT_JUMP_BAND
        jump = ((ratio >= lo) & (ratio <= hi)) | ((ratio <= 1 / lo) & (ratio >= 1 / hi))
        reject(pd.Series(jump, index=g.index).reindex(received.index), "unit_jump", "close ~100x its recent level")
        g = g.loc[~jump]
        adj = g["adj_close"].to_numpy()
        log_adj = np.log(adj[1:] / adj[:-1])
        log_close = np.log(g["close"].to_numpy()[1:] / g["close"].to_numpy()[:-1])
        split_jump = np.r_[False, _near_split(log_adj)]
        reject(
            pd.Series(split_jump, index=g.index).reindex(received.index),
            "split_jump",
            "adjusted close jumps by a split ratio",
        )
        ratio_move = np.abs(log_close - log_adj)
        mismatch = np.r_[False, (ratio_move > ADJ_RATIO_TOLERANCE) & ~_near_split(log_close)] & ~split_jump
        reject(
            pd.Series(mismatch, index=g.index).reindex(received.index),
            "adj_close_mismatch",
            "adj_close / close moved more than 25 % without a split",
        )
        moved = np.r_[False, g["close"].to_numpy()[1:] != g["close"].to_numpy()[:-1]]
        zero = (g["volume"].to_numpy() == 0) & moved
        hit = g.index[zero]
        data.loc[hit, "volume"] = np.nan
        flags[hit] = flags[hit] + "zero_volume_move,"

    ok = reasons.isna() & ~collapsed
    clean = data.loc[ok, ["ticker", "date", *PRICE_FIELDS]].assign(source=source, flags=flags[ok].str.rstrip(","))
    clean = clean.sort_values(["ticker", "date"]).reset_index(drop=True)
    bad = reasons.notna()
    quarantine = pd.DataFrame(
        {
            "ticker": data.loc[bad, "ticker"],
            "date": data.loc[bad, "date"],
            "source": source,
            "reason": reasons[bad].astype(str),
            "detail": details[bad].astype(str),
            "row_json": _rows_as_received(received.loc[bad]) if bad.any() else pd.Series(dtype="object"),
        }
    ).reset_index(drop=True)

    if sessions is not None and len(sessions):
        cal = pd.DatetimeIndex(sessions).normalize()
        for ticker, g in clean.groupby("ticker"):
            span = cal[(cal >= g["date"].min()) & (cal <= g["date"].max())]
            gone = span.difference(pd.DatetimeIndex(g["date"]))
            if len(gone):
                shown = ", ".join(str(d.date()) for d in gone[:5]) + (" ..." if len(gone) > 5 else "")
                report.append({"ticker": ticker, "check_name": "missing_session", "count": len(gone), "detail": shown})
    for ticker in sorted(set(requested or []) - set(data["ticker"])):
        report.append({"ticker": ticker, "check_name": "no_data", "count": 0, "detail": "the source sent no rows"})
    for flag in ("timezone_shifted", "zero_volume_move"):
        hit = clean[clean["flags"].str.contains(flag)]
        for ticker, n in hit.groupby("ticker").size().items():
            report.append({"ticker": ticker, "check_name": flag, "count": int(n), "detail": "repaired, flagged"})
    table = pd.DataFrame(report, columns=[c for c in REPORT_COLUMNS if c != "source"]).assign(source=source)
    return Screened(clean=clean, quarantine=quarantine, report=table[list(REPORT_COLUMNS)])
