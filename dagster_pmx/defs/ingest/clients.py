"""Market-data API clients: Yahoo Finance's chart API (what yfinance reads), Alpha Vantage and Finnhub.

All three share one :class:`HttpFetcher`:

* a **rate limit** per source (a minimum interval between calls) and a **call budget** per run
  (Alpha Vantage's free tier allows 25 calls a day): a spent budget stops the ingest with a
  clear error instead of burning the key;
* **retries** with exponential backoff and full jitter for transient failures (HTTP 429 and
  5xx, a connection error or timeout, a truncated body, Alpha Vantage's HTTP-200 rate-limit
  payloads ``Note`` / ``Information``), and **fail-fast** for permanent ones (HTTP 401/403/404,
  an invalid symbol, a premium-only endpoint, Finnhub's access-denied message), raised as
  :class:`PermanentError`;
* a **response cache** on disk, keyed by the request without its API key, for requests whose
  answer cannot change (a closed date range), so history is downloaded once;
* **API keys** only from environment variables; they are sent as query parameters and removed
  from every URL that is logged, cached or put in an error message.

Each client returns prices in the raw schema (``ticker, date, open, high, low, close, adj_close,
volume``) for the sessions after ``since`` (incremental fetch), and corporate actions where the
API provides them (Yahoo: splits and dividends). A ticker with no data gives an empty frame, not
an error: the ingest reports it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pandas as pd

log = logging.getLogger(__name__)

PRICE_FIELDS = ["ticker", "date", "open", "high", "low", "close", "adj_close", "volume"]
ACTION_FIELDS = ["ticker", "date", "action", "value"]
SECRET_PARAMS = ("apikey", "token")


class TransientError(RuntimeError):
    """A failure worth retrying (rate limit, server error, cut connection)."""


class PermanentError(RuntimeError):
    """A failure retrying cannot fix (bad key, no access, invalid symbol, premium endpoint)."""


def redact(params: dict) -> dict:
    """``params`` with API keys replaced, for logs, cache keys and errors."""
    return {k: ("***" if k in SECRET_PARAMS else v) for k, v in params.items()}


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter: attempt ``k`` waits ``uniform(0, min(cap, base * 2**k))``."""

    attempts: int = 5
    base: float = 1.0
    cap: float = 60.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0.0, min(self.cap, self.base * 2.0**attempt))


@dataclass
class HttpFetcher:
    """GET with a per-source rate limit, retries and an on-disk cache.

    ``min_interval`` is the least time between two requests of this source (60 / the free tier's
    calls per minute). ``sleep`` and ``clock`` are injectable so tests run without waiting.
    ``classify`` maps a parsed JSON body to an error (or None) for APIs that report failures in
    a 200 response.
    """

    source: str
    min_interval: float
    cache_dir: Path | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    classify: Callable[[object], Exception | None] = lambda body: None
    budget: int | None = None
    _last: float = field(default=-1e18, init=False)
    calls: int = field(default=0, init=False)

    def _cache_path(self, url: str, params: dict) -> Path | None:
        if self.cache_dir is None:
            return None
        key = json.dumps([url, sorted(redact(params).items())], default=str)
        return Path(self.cache_dir) / self.source / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def _wait_turn(self) -> None:
        wait = self._last + self.min_interval - self.clock()
        if wait > 0:
            self.sleep(wait)
        self._last = self.clock()

    def get_json(self, url: str, params: dict, cacheable: bool = False):
        """The parsed JSON body of ``GET url?params``; raises :class:`PermanentError`, or
        :class:`TransientError` once the retries are spent."""
        import requests

        path = self._cache_path(url, params) if cacheable else None
        if path is not None and path.exists():
            return json.loads(path.read_text())
        shown = f"{url}?{urlencode(redact(params))}"
        last_error: Exception | None = None
        for attempt in range(self.retry.attempts):
            if attempt:
                pause = self.retry.delay(attempt - 1)
                log.warning("%s: retry %d of %s in %.1fs after %s", self.source, attempt, shown, pause, last_error)
                self.sleep(pause)
            if self.budget is not None and self.calls >= self.budget:
                raise PermanentError(f"{self.source}: the budget of {self.budget} calls for this run is spent")
            self._wait_turn()
            self.calls += 1
            try:
                response = requests.get(url, params=params, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as err:
                last_error = TransientError(f"{self.source}: {type(err).__name__} on {shown}")
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                last_error = TransientError(f"{self.source}: HTTP {status} on {shown}")
                continue
            try:
                body = response.json()
            except ValueError:
                if status >= 400:
                    raise PermanentError(f"{self.source}: HTTP {status} on {shown}") from None
                last_error = TransientError(f"{self.source}: truncated or invalid JSON from {shown}")
                continue
            if status >= 400:
                message = body.get("error") if isinstance(body, dict) else None
                raise PermanentError(f"{self.source}: HTTP {status} on {shown}: {message or 'refused'}")
            problem = self.classify(body)
            if isinstance(problem, PermanentError):
                raise PermanentError(f"{problem} ({shown})")
            if isinstance(problem, TransientError):
                last_error = problem
                continue
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(body))
            return body
        raise TransientError(f"{self.source}: gave up after {self.retry.attempts} attempts: {last_error}")


def _frame(rows: list[dict], ticker: str, since: pd.Timestamp | None) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=PRICE_FIELDS[1:]) if rows else pd.DataFrame(columns=PRICE_FIELDS[1:])
    frame.insert(0, "ticker", ticker)
    if len(frame):
        frame["date"] = pd.to_datetime(frame["date"])
        if since is not None:
            frame = frame[frame["date"] > since]
    return frame.sort_values("date").reset_index(drop=True) if len(frame) else frame


def _unix_range(since: pd.Timestamp | None, until: pd.Timestamp | None) -> tuple[int, int, bool]:
    """Unix seconds from the session after ``since`` (or the beginning) to ``until`` (or tomorrow),
    and whether the range is closed (ends before today), so its answer may be cached."""
    today = pd.Timestamp.now().normalize()
    start = 0 if since is None else int((since + pd.Timedelta(days=1)).timestamp())
    end = int((until or today + pd.Timedelta(days=1)).timestamp())
    return start, end, until is not None and until < today


def _new_york_dates(seconds) -> pd.DatetimeIndex:
    """Session dates of Unix times inside the session (Yahoo stamps bars at the open)."""
    stamps = pd.to_datetime(pd.Series(seconds, dtype="int64"), unit="s", utc=True)
    return pd.DatetimeIndex(stamps.dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize())


def _utc_dates(seconds) -> pd.DatetimeIndex:
    """Session dates of Unix times at the session's UTC midnight (Finnhub's daily candles): read in
    New York time they would fall on the day before."""
    stamps = pd.to_datetime(pd.Series(seconds, dtype="int64"), unit="s", utc=True)
    return pd.DatetimeIndex(stamps.dt.tz_localize(None).dt.normalize())


# ---------------------------------------------------------------------------------------------
# Yahoo Finance chart API (the endpoint the yfinance package reads)
# ---------------------------------------------------------------------------------------------


class YahooClient:
    """Daily bars, adjusted closes, splits and dividends from ``/v8/finance/chart/{ticker}``."""

    name = "yahoo"
    BASE_URL = "https://query1.finance.yahoo.com"

    def __init__(self, fetcher: HttpFetcher, base_url: str | None = None) -> None:
        self.fetcher = fetcher
        self.base_url = (base_url or self.BASE_URL).rstrip("/")
        fetcher.classify = self.classify

    @staticmethod
    def classify(body) -> Exception | None:
        error = (body or {}).get("chart", {}).get("error") if isinstance(body, dict) else None
        if error:
            code = str(error.get("code", ""))
            if code in ("Not Found", "Bad Request"):
                return PermanentError(f"yahoo: {error.get('description', code)}")
            return TransientError(f"yahoo: {error}")
        return None

    def fetch(
        self, ticker: str, since: pd.Timestamp | None = None, until: pd.Timestamp | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        start, end, closed = _unix_range(since, until)
        params = {"period1": start, "period2": end, "interval": "1d", "events": "div,split"}
        body = self.fetcher.get_json(f"{self.base_url}/v8/finance/chart/{ticker}", params, cacheable=closed)
        result = (body.get("chart", {}).get("result") or [None])[0]
        if not result or not result.get("timestamp"):
            return _frame([], ticker, since), pd.DataFrame(columns=ACTION_FIELDS)
        quote = result["indicators"]["quote"][0]
        adj = (result["indicators"].get("adjclose") or [{}])[0].get("adjclose") or quote["close"]
        dates = _new_york_dates(result["timestamp"])
        rows = [
            {
                "date": d,
                "open": quote["open"][i],
                "high": quote["high"][i],
                "low": quote["low"][i],
                "close": quote["close"][i],
                "adj_close": adj[i],
                "volume": quote["volume"][i],
            }
            for i, d in enumerate(dates)
        ]
        events = result.get("events") or {}
        actions = [
            {"date": _new_york_dates([e["date"]])[0], "action": "split", "value": e["numerator"] / e["denominator"]}
            for e in (events.get("splits") or {}).values()
        ] + [
            {"date": _new_york_dates([e["date"]])[0], "action": "dividend", "value": e["amount"]}
            for e in (events.get("dividends") or {}).values()
        ]
        acts = pd.DataFrame(actions, columns=ACTION_FIELDS[1:])
        acts.insert(0, "ticker", ticker)
        return _frame(rows, ticker, since), acts


# ---------------------------------------------------------------------------------------------
# Alpha Vantage
# ---------------------------------------------------------------------------------------------


class AlphaVantageClient:
    """``TIME_SERIES_DAILY`` (free) or ``TIME_SERIES_DAILY_ADJUSTED`` (premium) from Alpha Vantage.

    Alpha Vantage answers HTTP 200 to almost everything; the body says what happened:
    ``Note`` or ``Information`` about call frequency is a rate limit (retried), ``Information``
    about a premium endpoint and ``Error Message`` (an invalid symbol or call) are permanent.
    """

    name = "alphavantage"
    BASE_URL = "https://www.alphavantage.co"

    def __init__(
        self, fetcher: HttpFetcher, api_key: str, function: str = "TIME_SERIES_DAILY", base_url: str | None = None
    ) -> None:
        if not api_key:
            raise PermanentError("alphavantage: no API key (set PMX_ALPHAVANTAGE_API_KEY)")
        self.fetcher, self.api_key, self.function = fetcher, api_key, function
        self.base_url = (base_url or self.BASE_URL).rstrip("/")
        fetcher.classify = self.classify

    @staticmethod
    def classify(body) -> Exception | None:
        if not isinstance(body, dict):
            return TransientError("alphavantage: unexpected body")
        if "Error Message" in body:
            return PermanentError(f"alphavantage: {body['Error Message']}")
        message = body.get("Note") or body.get("Information")
        if message:
            if "premium" in message.lower():
                return PermanentError(f"alphavantage: premium endpoint: {message}")
            return TransientError(f"alphavantage: rate limited: {message}")
        return None

    def fetch(self, ticker: str, since: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        # compact holds the last 100 sessions: enough when the stored history ends within them
        recent = since is not None and since >= pd.Timestamp.now().normalize() - pd.Timedelta(days=130)
        params = {
            "function": self.function,
            "symbol": ticker,
            "outputsize": "compact" if recent else "full",
            "apikey": self.api_key,
        }
        body = self.fetcher.get_json(f"{self.base_url}/query", params)
        series = next((v for k, v in body.items() if k.startswith("Time Series")), None)
        if not series:
            return _frame([], ticker, since), pd.DataFrame(columns=ACTION_FIELDS)
        rows, actions = [], []
        for day, bar in series.items():
            close = bar.get("4. close")
            rows.append(
                {
                    "date": day,
                    "open": bar.get("1. open"),
                    "high": bar.get("2. high"),
                    "low": bar.get("3. low"),
                    "close": close,
                    "adj_close": bar.get("5. adjusted close", close),
                    "volume": bar.get("6. volume", bar.get("5. volume")),
                }
            )
            if float(bar.get("8. split coefficient", 1.0) or 1.0) != 1.0:
                actions.append({"date": day, "action": "split", "value": float(bar["8. split coefficient"])})
            if float(bar.get("7. dividend amount", 0.0) or 0.0) > 0:
                actions.append({"date": day, "action": "dividend", "value": float(bar["7. dividend amount"])})
        acts = pd.DataFrame(actions, columns=ACTION_FIELDS[1:])
        acts.insert(0, "ticker", ticker)
        acts["date"] = pd.to_datetime(acts["date"])
        return _frame(rows, ticker, since), acts


# ---------------------------------------------------------------------------------------------
# Finnhub
# ---------------------------------------------------------------------------------------------


class FinnhubClient:
    """Daily candles from Finnhub's ``/api/v1/stock/candle``; ``{"s": "no_data"}`` is an empty answer."""

    name = "finnhub"
    BASE_URL = "https://finnhub.io"

    def __init__(self, fetcher: HttpFetcher, api_key: str, base_url: str | None = None) -> None:
        if not api_key:
            raise PermanentError("finnhub: no API key (set PMX_FINNHUB_API_KEY)")
        self.fetcher, self.api_key = fetcher, api_key
        self.base_url = (base_url or self.BASE_URL).rstrip("/")
        fetcher.classify = self.classify

    @staticmethod
    def classify(body) -> Exception | None:
        if isinstance(body, dict) and "error" in body:
            message = str(body["error"])
            if "access" in message.lower() or "api key" in message.lower():
                return PermanentError(f"finnhub: {message}")
            return TransientError(f"finnhub: {message}")
        return None

    def fetch(
        self, ticker: str, since: pd.Timestamp | None = None, until: pd.Timestamp | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        start, end, closed = _unix_range(since, until)
        params = {"symbol": ticker, "resolution": "D", "from": start, "to": end, "token": self.api_key}
        body = self.fetcher.get_json(f"{self.base_url}/api/v1/stock/candle", params, cacheable=closed)
        empty = pd.DataFrame(columns=ACTION_FIELDS)
        if body.get("s") == "no_data" or not body.get("t"):
            return _frame([], ticker, since), empty
        if body.get("s") != "ok":
            raise PermanentError(f"finnhub: unexpected status {body.get('s')!r} for {ticker}")
        dates = _utc_dates(body["t"])
        rows = [
            {
                "date": d,
                "open": body["o"][i],
                "high": body["h"][i],
                "low": body["l"][i],
                "close": body["c"][i],
                "adj_close": body["c"][i],  # Finnhub candles are split-adjusted, not dividend-adjusted
                "volume": body["v"][i],
            }
            for i, d in enumerate(dates)
        ]
        return _frame(rows, ticker, since), empty
