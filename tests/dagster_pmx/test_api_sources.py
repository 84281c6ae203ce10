"""The market-data API clients against responses served by a local HTTP server (no network).

The fixtures under tests/fixtures/api follow each API's documented response shapes; their values
are made up, since nothing outside the package registries is reachable here.
"""

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import dagster as dg
import pandas as pd
import pytest

from dagster_pmx.defs.ingest import clients
from dagster_pmx.defs.ingest.assets import raw_prices
from dagster_pmx.defs.ingest.sources import ApiSource, make_api_source
from dagster_pmx.resources import PmxSettings, Warehouse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "api"
KEY = "sekrit-key-123"


class Recorded:
    """Queues of (status, body) per path; the last answer of a queue repeats. Requests are logged."""

    def __init__(self):
        self.routes: dict[str, list[tuple[int, str]]] = {}
        self.requests: list[tuple[str, dict]] = []

    def add(self, path, *answers):
        self.routes[path] = [(s, b if isinstance(b, str) else json.dumps(b)) for s, b in answers]

    def answer(self, path):
        queue = self.routes.get(path, [(404, json.dumps({"error": "no route"}))])
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def server():
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            url = urlparse(self.path)
            recorded.requests.append((url.path, {k: v[0] for k, v in parse_qs(url.query).items()}))
            status, body = recorded.answer(url.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    recorded.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield recorded
    httpd.shutdown()


def fetcher(source, cache_dir=None, attempts=4, interval=0.0):
    waits = []
    f = clients.HttpFetcher(
        source,
        interval,
        cache_dir=cache_dir,
        retry=clients.RetryPolicy(attempts=attempts, base=1.0, cap=8.0),
        sleep=waits.append,
    )
    f.waits = waits
    return f


def fixture(name):
    return json.loads((FIXTURES / name).read_text())


def test_yahoo_bars_dates_and_corporate_actions(server):
    server.add("/v8/finance/chart/AAPL", (200, fixture("yahoo_chart_AAPL.json")))
    bars, actions = clients.YahooClient(fetcher("yahoo"), base_url=server.url).fetch("AAPL")
    assert list(bars["date"].dt.strftime("%Y-%m-%d")) == [
        "2021-06-01",
        "2021-06-02",
        "2021-06-03",
        "2021-06-04",
        "2021-06-07",
    ]
    assert bars["adj_close"].iloc[0] == 30.82 and bars["volume"].iloc[-1] == 261716400
    got = actions.set_index("action")
    assert got.loc["split", "value"] == 4.0 and str(got.loc["split", "date"].date()) == "2021-06-04"
    assert got.loc["dividend", "value"] == 0.22
    since = pd.Timestamp("2021-06-03")
    bars, _ = clients.YahooClient(fetcher("yahoo"), base_url=server.url).fetch("AAPL", since=since)
    assert list(bars["date"].dt.strftime("%Y-%m-%d")) == ["2021-06-04", "2021-06-07"]
    assert int(server.requests[-1][1]["period1"]) == int(pd.Timestamp("2021-06-04").timestamp())


def test_http_429_is_retried_with_backoff_and_jitter(server):
    server.add("/v8/finance/chart/AAPL", (429, {"error": "Too Many Requests"}), (200, fixture("yahoo_chart_AAPL.json")))
    f = fetcher("yahoo")
    bars, _ = clients.YahooClient(f, base_url=server.url).fetch("AAPL")
    assert len(bars) == 5 and f.calls == 2
    assert len(f.waits) == 1 and 0.0 <= f.waits[0] <= 1.0  # attempt 1 waits uniform(0, base)


def test_server_errors_and_truncated_json_give_up_after_the_attempts(server):
    server.add("/v8/finance/chart/AAPL", (200, '{"chart": {"result": [{"timestamp": [16225'))
    f = fetcher("yahoo", attempts=3)
    with pytest.raises(clients.TransientError, match="gave up after 3 attempts: .*truncated"):
        clients.YahooClient(f, base_url=server.url).fetch("AAPL")
    assert f.calls == 3 and all(w <= 8.0 for w in f.waits)
    server.add("/v8/finance/chart/MSFT", (503, "unavailable"), (200, fixture("yahoo_chart_AAPL.json")))
    bars, _ = clients.YahooClient(fetcher("yahoo"), base_url=server.url).fetch("MSFT")
    assert len(bars) == 5


def test_alpha_vantage_rate_limit_payloads_are_retried(server):
    note = {"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute."}
    info = {
        "Information": "Please consider spreading out your free API requests more sparingly (1 request per second)."
    }
    server.add("/query", (200, note), (200, info), (200, fixture("alphavantage_daily_IBM.json")))
    f = fetcher("alphavantage")
    bars, actions = clients.AlphaVantageClient(f, KEY, base_url=server.url).fetch("IBM")
    assert f.calls == 3 and len(bars) == 4 and actions.empty
    assert list(bars["date"].dt.strftime("%Y-%m-%d")) == ["2021-06-01", "2021-06-02", "2021-06-03", "2021-06-04"]
    assert bars["close"].iloc[-1] == "144.5200"  # text as received: the data-quality wall types it
    assert server.requests[-1][1]["function"] == "TIME_SERIES_DAILY"


@pytest.mark.parametrize(
    "payload, match",
    [
        (
            {"Information": "Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to ..."},
            "premium endpoint",
        ),
        (
            {"Error Message": "Invalid API call. Please retry or visit the documentation for TIME_SERIES_DAILY."},
            "Invalid API call",
        ),
    ],
)
def test_alpha_vantage_permanent_errors_fail_fast(server, payload, match):
    server.add("/query", (200, payload))
    f = fetcher("alphavantage")
    with pytest.raises(clients.PermanentError, match=match):
        clients.AlphaVantageClient(f, KEY, function="TIME_SERIES_DAILY_ADJUSTED", base_url=server.url).fetch("XXXX")
    assert f.calls == 1 and f.waits == []


def test_finnhub_candles_no_data_and_access_denied(server):
    server.add("/api/v1/stock/candle", (200, fixture("finnhub_candle_MSFT.json")))
    bars, _ = clients.FinnhubClient(fetcher("finnhub"), KEY, base_url=server.url).fetch("MSFT")
    # stamped at UTC midnight: read in New York time they would be the day before (a holiday here)
    assert list(bars["date"].dt.strftime("%Y-%m-%d")) == ["2021-06-01", "2021-06-02", "2021-06-03"]
    server.add("/api/v1/stock/candle", (200, {"s": "no_data"}))
    bars, _ = clients.FinnhubClient(fetcher("finnhub"), KEY, base_url=server.url).fetch("NOPE")
    assert bars.empty and list(bars.columns) == clients.PRICE_FIELDS
    server.add("/api/v1/stock/candle", (403, {"error": "You don't have access to this resource."}))
    f = fetcher("finnhub")
    with pytest.raises(clients.PermanentError, match="HTTP 403.*access"):
        clients.FinnhubClient(f, KEY, base_url=server.url).fetch("MSFT")
    assert f.calls == 1


def test_empty_yahoo_result_is_an_empty_frame(server):
    server.add(
        "/v8/finance/chart/NEW",
        (200, {"chart": {"result": [{"meta": {}, "indicators": {"quote": [{}]}}], "error": None}}),
    )
    bars, actions = clients.YahooClient(fetcher("yahoo"), base_url=server.url).fetch("NEW")
    assert bars.empty and actions.empty


def test_rate_limit_spaces_the_calls():
    now = [0.0]
    waits = []

    def sleep(s):
        waits.append(s)
        now[0] += s

    f = clients.HttpFetcher("x", 12.0, sleep=sleep, clock=lambda: now[0])
    f._wait_turn()
    now[0] += 5.0
    f._wait_turn()
    f._wait_turn()
    assert waits == [7.0, 12.0]


def test_closed_ranges_are_cached_and_keys_never_leave_the_process(server, tmp_path, caplog):
    server.add(
        "/api/v1/stock/candle", (500, "oops"), (200, fixture("finnhub_candle_MSFT.json")), (500, "should not be asked")
    )
    cache = tmp_path / "cache"
    caplog.set_level(logging.WARNING)
    client = clients.FinnhubClient(fetcher("finnhub", cache_dir=cache), KEY, base_url=server.url)
    first, _ = client.fetch("MSFT", until=pd.Timestamp("2021-06-04"))
    again, _ = client.fetch("MSFT", until=pd.Timestamp("2021-06-04"))
    pd.testing.assert_frame_equal(first, again)
    assert len(server.requests) == 2  # one failure, one success, then the cache
    files = list(cache.rglob("*.json"))
    assert len(files) == 1 and KEY not in files[0].read_text() and KEY not in str(files[0])
    assert "retry" in caplog.text and KEY not in caplog.text and "token=%2A%2A%2A" in caplog.text
    server.add("/api/v1/stock/candle", (403, {"error": "Invalid API key"}))
    with pytest.raises(clients.PermanentError) as err:
        clients.FinnhubClient(fetcher("finnhub"), KEY, base_url=server.url).fetch("MSFT")
    assert KEY not in str(err.value)


def test_api_source_through_the_ingest_asset(server, tmp_path, monkeypatch):
    server.add("/v8/finance/chart/AAPL", (200, fixture("yahoo_chart_AAPL.json")))
    server.add(
        "/v8/finance/chart/BAD",
        (
            200,
            {
                "chart": {
                    "result": None,
                    "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"},
                }
            },
        ),
    )
    monkeypatch.setenv("PMX_YAHOO_BASE_URL", server.url)
    warehouse = Warehouse(path=str(tmp_path / "wh.ducklake"))
    settings = PmxSettings(source="yahoo", tickers="AAPL,BAD", benchmark="AAPL", start_date="2021-01-01")
    list(raw_prices(dg.build_asset_context(), warehouse=warehouse, settings=settings))
    prices = warehouse.query("select * from raw.prices order by date")
    assert len(prices) == 5 and set(prices["source"]) == {"yahoo"}
    actions = warehouse.query("select action, value from raw.corporate_actions order by action")
    assert actions["action"].tolist() == ["dividend", "split"]
    report = warehouse.query("select * from raw.ingest_report where check_name = 'no_data'")
    assert report["ticker"].tolist() == ["BAD"] and "delisted" in report["detail"].iloc[0]
    # the next run asks only for the sessions after the last stored one, and stores nothing twice
    list(raw_prices(dg.build_asset_context(), warehouse=warehouse, settings=settings))
    asked = [q for p, q in server.requests if p.endswith("/AAPL")]
    assert int(asked[-1]["period1"]) == int(pd.Timestamp("2021-06-08").timestamp())
    assert len(warehouse.query("select * from raw.prices")) == 5


def test_keys_come_from_the_environment_only():
    with pytest.raises(clients.PermanentError, match="PMX_FINNHUB_API_KEY"):
        make_api_source("finnhub", environ={})
    source = make_api_source("alphavantage", environ={"PMX_ALPHAVANTAGE_API_KEY": KEY})
    assert isinstance(source, ApiSource) and source.name == "alphavantage"


def test_a_spent_call_budget_stops_before_the_next_request(server):
    server.add("/query", (200, fixture("alphavantage_daily_IBM.json")))
    f = fetcher("alphavantage")
    f.budget = 2
    client = clients.AlphaVantageClient(f, KEY, base_url=server.url)
    client.fetch("IBM")
    client.fetch("IBM")
    with pytest.raises(clients.PermanentError, match="budget of 2 calls"):
        client.fetch("IBM")
    assert len(server.requests) == 2
