"""Price and macro sources behind one interface.

A source returns long frames in the raw schema; the ingest assets upsert them. The
bundled source reads the real market data shipped inside PyPI packages (skfolio, arch);
the CSV source reads a user's folder. Market-data APIs plug in here as further classes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd

from python_models.data_quality import SchemaError, normalise_columns

PRICE_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "adj_close", "volume", "source"]
MACRO_COLUMNS = ["series_id", "date", "value", "unit", "source"]


class PriceSource(ABC):
    """Something that yields daily prices and macro series in the raw schema."""

    name: str

    @abstractmethod
    def prices(self, tickers: list[str] | None = None) -> pd.DataFrame:
        """Daily prices with :data:`PRICE_COLUMNS`; ``tickers=None`` means all."""

    def macro(self) -> pd.DataFrame:
        """Macro series with :data:`MACRO_COLUMNS` (none by default)."""
        return pd.DataFrame(columns=MACRO_COLUMNS)


def _close_only(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    long = frame.rename_axis("date").reset_index().melt(id_vars="date", var_name="ticker", value_name="close")
    long = long.dropna(subset=["close"])
    long["adj_close"] = long["close"]
    for col in ("open", "high", "low", "volume"):
        long[col] = np.nan
    long["source"] = source
    return long[PRICE_COLUMNS]


def _yyyymm_to_date(index: pd.Index) -> pd.DatetimeIndex:
    """arch's frenchdata index holds YYYYMM integers mis-read as nanoseconds since 1970."""
    codes = np.asarray(index.asi8 if isinstance(index, pd.DatetimeIndex) else index, dtype=np.int64)
    return pd.to_datetime({"year": codes // 100, "month": codes % 100, "day": 1})


class BundledSource(PriceSource):
    """Real data shipped in PyPI packages (no network).

    * skfolio ``load_sp500_dataset``: 20 S&P 500 stocks, adjusted close, 1990–2022 (close only);
    * skfolio ``load_sp500_index``: the S&P 500 index as ticker ``SP500`` (close only);
    * ``arch.data.sp500``: S&P 500 OHLCV 1999–2018, ticker ``SP500``, source ``arch``;
    * macro: Fama–French monthly factors and RF (percent per month), Moody's AAA/BAA
      yields (percent per year), US core CPI (index level).
    """

    name = "bundled"

    def prices(self, tickers: list[str] | None = None) -> pd.DataFrame:
        from arch.data import sp500
        from skfolio.datasets import load_sp500_dataset, load_sp500_index

        stocks = _close_only(load_sp500_dataset(), "skfolio")
        index = _close_only(load_sp500_index(), "skfolio")
        ohlcv = sp500.load().rename(
            columns={
                "Open": "open",
                "High": "high",
                "Low": "low",
                "Close": "close",
                "Adj Close": "adj_close",
                "Volume": "volume",
            }
        )
        ohlcv = ohlcv.rename_axis("date").reset_index().assign(ticker="SP500", source="arch")[PRICE_COLUMNS]
        out = pd.concat([stocks, index, ohlcv], ignore_index=True)
        if tickers:
            out = out[out["ticker"].isin(tickers)]
        return out.reset_index(drop=True)

    def macro(self) -> pd.DataFrame:
        from arch.data import core_cpi, default, frenchdata

        ff = frenchdata.load()
        ff.index = _yyyymm_to_date(ff.index)
        parts = [
            (ff, "percent_per_month"),
            (default.load(), "percent_per_year"),
            (core_cpi.load(), "index"),
        ]
        frames = []
        for frame, unit in parts:
            long = frame.rename_axis("date").reset_index().melt(id_vars="date", var_name="series_id")
            long["unit"] = unit
            long["source"] = "arch"
            frames.append(long[MACRO_COLUMNS])
        return pd.concat(frames, ignore_index=True).dropna(subset=["value"])


class CsvFolderSource(PriceSource):
    """A folder of CSV or Parquet files: one per ticker (``AAPL.csv``, ``AAPL.parquet``; the file
    name is the ticker) or long files with a ``ticker`` column.

    Schema: ``date`` and ``close`` are required; ``open``, ``high``, ``low``, ``adj_close``
    (defaults to ``close``) and ``volume`` are optional; ``ticker`` (or ``symbol``) when a file
    holds several tickers. Names are case-insensitive and common aliases are mapped (``Adj
    Close``, ``adjusted_close``, ``timestamp``...; see :func:`python_models.data_quality.normalise_columns`).
    Values are read as text and typed by the data-quality wall, so a value that does not parse
    is quarantined with its row rather than failing the whole file. A file without ``date`` or
    ``close`` is refused with an error naming it.
    """

    name = "csv"
    PATTERNS = ("*.csv", "*.parquet")

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"PMX_CSV_DIR {self.folder} is not a directory")

    def _read(self, path: Path) -> pd.DataFrame:
        if path.suffix == ".parquet":
            import duckdb  # reads Parquet without pyarrow

            with duckdb.connect() as con:
                return con.execute("select * from read_parquet(?)", [str(path)]).df()
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])

    def prices(self, tickers: list[str] | None = None) -> pd.DataFrame:
        frames = []
        paths = sorted(p for pattern in self.PATTERNS for p in self.folder.glob(pattern))
        for path in paths:
            try:
                frame = normalise_columns(self._read(path), ticker=path.stem.upper())
            except SchemaError as err:
                raise SchemaError(f"{path.name}: {err}") from None
            frame["source"] = self.name
            frames.append(frame[PRICE_COLUMNS])
        if not frames:
            raise ValueError(f"no CSV or Parquet files in {self.folder}")
        out = pd.concat(frames, ignore_index=True)
        out["ticker"] = out["ticker"].astype(str).str.strip().str.upper()
        if tickers:
            out = out[out["ticker"].isin(tickers)]
        return out.reset_index(drop=True)


def make_source(kind: str, csv_dir: str = "") -> PriceSource:
    """The source named by ``PMX_SOURCE``: ``bundled`` (default) or ``csv``."""
    if kind == "bundled":
        return BundledSource()
    if kind == "csv":
        return CsvFolderSource(csv_dir)
    raise ValueError(f"unknown source {kind!r}; expected 'bundled' or 'csv'")
