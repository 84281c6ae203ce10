"""Price and macro sources behind one interface.

A source returns long frames in the raw schema; the ingest assets upsert them. The
bundled source reads the real market data shipped inside PyPI packages (skfolio, arch);
the CSV source reads a user's folder. Market-data APIs plug in here as further classes.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd

from python_models.data_quality.normalise import (
    SchemaError,
    canonical_numbers,
    decimal_mark,
    normalise_columns,
    sniff_delimiter,
)

PRICE_COLUMNS = ["ticker", "date", "open", "high", "low", "close", "adj_close", "volume", "source"]
MACRO_COLUMNS = ["series_id", "date", "value", "unit", "source"]


class PriceSource(ABC):
    """Something that yields daily prices and macro series in the raw schema."""

    name: str

    @abstractmethod
    def prices(self, tickers: list[str] | None = None, since: dict | None = None) -> pd.DataFrame:
        """Daily prices with :data:`PRICE_COLUMNS`; ``tickers=None`` means all. ``since`` maps a
        ticker to its last stored session: a source that can fetch incrementally sends only the
        sessions after it; file sources send everything (the upsert makes the rest a no-op)."""

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


def _skfolio_dataset(name: str) -> pd.DataFrame:
    """skfolio's packaged dataset ``name`` as ``skfolio.datasets.load_<name>()`` returns it, read from the
    installed package's data folder without importing skfolio (~0.3 s of a daily refresh that needs
    nothing else from it; the test of the bundled source checks both give the same frame)."""
    spec = importlib.util.find_spec("skfolio")  # finds the package; runs none of its code
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the bundled source needs skfolio, whose package ships the default data")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / f"{name}.csv.gz"
    frame = pd.read_csv(path, sep=",", index_col=0, encoding="utf-8")  # pandas reads the gzip from the suffix
    frame.index = pd.to_datetime(frame.index, format="%Y-%m-%d")
    return frame


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
    #: the ``source`` its rows carry: the package each series comes from
    row_sources = ("skfolio", "arch")

    def prices(self, tickers: list[str] | None = None, since: dict | None = None) -> pd.DataFrame:
        """The packaged series; with ``since``, only each ticker's sessions after it. The data ship
        inside installed packages and do not change while they are installed, so what is stored
        needs no second look (unlike a folder of files a vendor may restate); a backfill (a start
        date in the run config) reads its range again."""
        from arch.data import sp500

        stocks = _close_only(_skfolio_dataset("sp500_dataset"), "skfolio")
        index = _close_only(_skfolio_dataset("sp500_index"), "skfolio")
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
        if since:
            last = out["ticker"].map(since)
            out = out[last.isna() | (out["date"] > last)]
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
    Close``, ``adjusted_close``, ``timestamp``...; see :func:`python_models.data_quality.normalise.normalise_columns`).
    Values are read as text and typed by the data-quality wall, so a value that does not parse
    is quarantined with its row rather than failing the whole file. The delimiter is the one of
    ``, ; tab |`` that splits the header into a date and a close; numbers may carry thousands
    separators ("1,234.50"), and a semicolon-delimited file with decimal commas ("1.234,50") is read
    as such (:func:`~python_models.data_quality.normalise.canonical_numbers`). A file without ``date``
    or ``close`` under any delimiter is refused with an error naming it and the delimiters tried.
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
        with path.open(encoding="utf-8-sig") as handle:
            sep = sniff_delimiter(handle.readline())
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")
        # decimal commas (the European convention) only where a comma-separated file cannot have them and
        # every number reads that way while some cannot read with a decimal point
        return canonical_numbers(frame, decimal="," if sep != "," and decimal_mark(frame) == "," else ".")

    def prices(self, tickers: list[str] | None = None, since: dict | None = None) -> pd.DataFrame:
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


class ApiSource(PriceSource):
    """A market-data API (:mod:`dagster_pmx.defs.ingest.clients`) behind the source interface.

    Fetches each ticker after its last stored session (``since``); a ticker the API refuses
    permanently (an invalid symbol) is skipped and listed in ``failures``; if every ticker is
    refused (a bad key, no access) the ingest stops with that error. Splits and dividends the
    API returns are kept in ``actions``.
    """

    def __init__(self, client) -> None:
        self.client = client
        self.name = client.name
        self.actions = pd.DataFrame(columns=["ticker", "date", "action", "value"])
        self.failures: dict[str, str] = {}

    def prices(self, tickers: list[str] | None = None, since: dict | None = None) -> pd.DataFrame:
        from dagster_pmx.defs.ingest.clients import PermanentError

        if not tickers:
            raise ValueError(f"source {self.name!r} needs a universe: set PMX_TICKERS")
        since = since or {}
        frames, actions, self.failures = [], [], {}
        for ticker in tickers:
            try:
                bars, acts = self.client.fetch(ticker, since.get(ticker))
            except PermanentError as err:
                self.failures[ticker] = str(err)
                continue
            frames.append(bars)
            actions.append(acts)
        if len(self.failures) == len(tickers):
            raise PermanentError(f"{self.name} refused every ticker: {next(iter(self.failures.values()))}")
        self.actions = pd.concat(actions, ignore_index=True) if actions else self.actions
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PRICE_COLUMNS[:-1])
        return out.assign(source=self.name)[PRICE_COLUMNS]


#: Seconds between two calls of each API (its free tier: Yahoo unpublished, Alpha Vantage 5 a
#: minute, Finnhub 60 a minute).
MIN_INTERVAL = {"yahoo": 0.5, "alphavantage": 12.0, "finnhub": 1.0}
#: Calls one ingest run may make (Alpha Vantage's free tier: 25 a day; the others have none).
BUDGET = {"alphavantage": 25}


def make_api_source(kind: str, cache_dir: str | Path | None = None, environ: dict | None = None) -> ApiSource:
    """An API source configured by the ``[sources]`` settings and the environment: keys
    ``PMX_ALPHAVANTAGE_API_KEY`` and ``PMX_FINNHUB_API_KEY`` (environment only), and
    ``<source>_base_url`` (``PMX_<SOURCE>_BASE_URL``) to point a client elsewhere (a proxy, or the
    recorded responses the tests serve). ``environ`` replaces both (tests)."""
    from dagster_pmx.config import load_config
    from dagster_pmx.defs.ingest import clients

    env = load_config().environ() if environ is None else environ
    fetcher = clients.HttpFetcher(
        kind, MIN_INTERVAL[kind], cache_dir=Path(cache_dir) if cache_dir else None, budget=BUDGET.get(kind)
    )
    base = env.get(f"PMX_{kind.upper()}_BASE_URL") or None
    if kind == "yahoo":
        return ApiSource(clients.YahooClient(fetcher, base_url=base))
    if kind == "alphavantage":
        function = env.get("PMX_ALPHAVANTAGE_FUNCTION") or "TIME_SERIES_DAILY"
        key = env.get("PMX_ALPHAVANTAGE_API_KEY", "")
        return ApiSource(clients.AlphaVantageClient(fetcher, key, function=function, base_url=base))
    return ApiSource(clients.FinnhubClient(fetcher, env.get("PMX_FINNHUB_API_KEY", ""), base_url=base))


def make_source(kind: str, csv_dir: str = "", cache_dir: str | Path | None = None) -> PriceSource:
    """The source named by ``PMX_SOURCE``: ``bundled`` (default), ``csv``, ``yahoo``,
    ``alphavantage`` or ``finnhub``."""
    if kind == "bundled":
        return BundledSource()
    if kind == "csv":
        return CsvFolderSource(csv_dir)
    if kind in MIN_INTERVAL:
        return make_api_source(kind, cache_dir)
    raise ValueError(f"unknown source {kind!r}; expected bundled, csv, yahoo, alphavantage or finnhub")
