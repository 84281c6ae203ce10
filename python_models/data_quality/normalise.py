"""Before the rules: map a source's columns onto the wall's, and parse the values it sent.

Schema drift (renamed, missing or MultiIndex columns) is handled by :func:`normalise_columns`:
known aliases are renamed, yfinance-style ``(field, ticker)`` columns are unstacked, and a frame
without a date or close column is refused with :class:`SchemaError`. :func:`parse_values` turns
the text a source may send into numbers and New York session dates; what does not parse becomes
NaN / NaT, for the rules to refuse with the row as it was received.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

PRICE_FIELDS = ("open", "high", "low", "close", "adj_close", "volume")
COLUMNS = ("ticker", "date", *PRICE_FIELDS, "source")

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
#: The exchange's timezone: a timezone-aware timestamp is read as the session it falls in there.
EXCHANGE_TZ = "America/New_York"


class SchemaError(ValueError):
    """The frame lacks a column the wall cannot do without, or has columns it cannot map."""


#: Field delimiters a text file of prices may use, in the order they are tried.
DELIMITERS = (",", ";", "\t", "|")
#: A number with thousands separators and a decimal point ("1,234.50"), or plain.
_POINT = re.compile(r"^\s*[-+]?(\d{1,3}(,\d{3})+|\d*)(\.\d*)?\s*$")
#: A number with a decimal comma and thousands points ("1.234,50", "1234,5").
_COMMA = re.compile(r"^\s*[-+]?(\d{1,3}(\.\d{3})+|\d*)(,\d*)?\s*$")


def _column_key(name: str) -> str:
    key = str(name).strip().lower()
    key = ALIASES.get(key, key).replace(" ", "_")
    return ALIASES.get(key, key)


def sniff_delimiter(header: str) -> str:
    """The delimiter of a price file's header line: the first of :data:`DELIMITERS` that splits it into
    columns with a date and a close.

    Raises
    ------
    SchemaError
        When none does, naming the delimiters tried and the header.
    """
    for sep in DELIMITERS:
        names = {_column_key(c) for c in header.strip().split(sep)}
        if {"date", "close"} <= names:
            return sep
    tried = ", ".join(repr(s) for s in DELIMITERS)
    raise SchemaError(
        f"no delimiter of {tried} splits the header into columns with a date and a close: {header[:120]!r}"
    )


def decimal_mark(frame: pd.DataFrame) -> str:
    """The decimal mark of a file's price and volume text: ``","`` where every value fits the
    decimal-comma pattern and some do not fit the decimal-point one ("987,25", "1.234,50"), else ``"."``
    (an ambiguous file, all of whose values read either way, e.g. "12,345", keeps the point)."""
    values = pd.concat(
        [frame[c].dropna().astype(str) for c in frame.columns if _column_key(c) in PRICE_FIELDS], ignore_index=True
    )
    values = values[values.str.strip() != ""]
    if values.empty or not values.str.match(_COMMA).all():
        return "."
    return "," if (~values.str.match(_POINT)).any() else "."


def canonical_numbers(frame: pd.DataFrame, decimal: str = ".") -> pd.DataFrame:
    """The price and volume text of ``frame`` rewritten as plain numbers: thousands separators dropped
    ("1,234.50" -> "1234.50") and, with ``decimal=","``, decimal commas turned to points ("1.234,50" ->
    "1234.50"). Text that fits neither pattern is left as it was sent, for the wall to refuse if it does
    not parse (an ambiguous "1,234" under decimal commas is 1.234, under points 1234)."""
    if decimal not in (".", ","):
        raise ValueError(f"decimal must be '.' or ',', got {decimal!r}")
    out = frame.copy()
    pattern = _COMMA if decimal == "," else _POINT
    for col in (c for c in out.columns if _column_key(c) in PRICE_FIELDS):
        text = out[col]
        if not (pd.api.types.is_string_dtype(text) or text.dtype == object):
            continue
        fits = text.notna() & text.astype(str).str.match(pattern)
        cleaned = text[fits].astype(str).str.strip()
        if decimal == ",":
            cleaned = cleaned.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
        else:
            cleaned = cleaned.str.replace(",", "", regex=False)
        out.loc[fits, col] = cleaned
    return out


def normalise_columns(frame: pd.DataFrame, ticker: str | None = None) -> pd.DataFrame:
    """Lower-case, snake-case and de-alias the columns; unstack ``(field, ticker)`` MultiIndex
    columns (yfinance's multi-ticker layout) into a long frame; move a date index into a column.

    Parameters
    ----------
    frame : pandas.DataFrame
        Prices as a source sent them.
    ticker : str, optional
        The frame's ticker when it has no ticker column.

    Returns
    -------
    pandas.DataFrame
        ``ticker``, ``date`` and every price field (NaN where the source has none; ``adj_close``
        is the close when the source sends no adjusted close), plus any other columns it had.

    Raises
    ------
    SchemaError
        When ``date`` or ``close`` is missing, columns collide once mapped, or there is no ticker.
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
    out.columns = pd.Index([_column_key(c) for c in out.columns])
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


def parse_values(received: pd.DataFrame) -> pd.DataFrame:
    """The received rows with tickers upper-cased, price fields as floats and dates as New York sessions.

    Parameters
    ----------
    received : pandas.DataFrame
        Rows through :func:`normalise_columns`; values may be text.

    Returns
    -------
    pandas.DataFrame
        The same rows and index; a value that does not parse is NaN (a price field) or NaT (the date).
        A timezone-aware timestamp is converted to New York time before its day is taken.
    """
    data = received.copy()
    data["ticker"] = data["ticker"].astype(str).str.strip().str.upper()
    for col in PRICE_FIELDS:
        data[col] = pd.to_numeric(data[col], errors="coerce").astype(float)
    dates = pd.to_datetime(data["date"], errors="coerce", utc=False, format="mixed")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert(EXCHANGE_TZ).dt.tz_localize(None)
    data["date"] = dates.dt.normalize()
    return data
