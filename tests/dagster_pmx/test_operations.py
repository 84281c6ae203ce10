"""Tier 2: the holiday-aware schedule, freshness checks, the run-failure sensor and the retry policy."""

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest

from dagster_pmx.definitions import build_definitions
from dagster_pmx.defs.ingest.assets import NETWORK_RETRY
from dagster_pmx.defs.operations.calendar import last_published_session
from dagster_pmx.defs.operations.checks import prices_are_fresh, signals_are_fresh
from dagster_pmx.defs.operations.jobs import daily_refresh_schedule
from dagster_pmx.defs.operations.sensors import alert_on_run_failure
from dagster_pmx.resources import PmxSettings, Warehouse

NY = ZoneInfo("America/New_York")


def test_the_daily_refresh_skips_nyse_holidays():
    independence_day = dg.build_schedule_context(scheduled_execution_time=datetime(2024, 7, 4, 18, 30, tzinfo=NY))
    assert isinstance(daily_refresh_schedule(independence_day), dg.SkipReason)
    good_friday = dg.build_schedule_context(scheduled_execution_time=datetime(2024, 3, 29, 18, 30, tzinfo=NY))
    assert isinstance(daily_refresh_schedule(good_friday), dg.SkipReason)
    request = daily_refresh_schedule(
        dg.build_schedule_context(scheduled_execution_time=datetime(2024, 7, 5, 18, 30, tzinfo=NY))
    )
    assert isinstance(request, dg.RunRequest) and request.run_key == "daily_refresh:2024-07-05"


def test_the_last_published_session_waits_for_the_evening_and_skips_holidays():
    at = lambda text: last_published_session(pd.Timestamp(text, tz=NY))  # noqa: E731
    assert at("2024-07-05 18:29") == pd.Timestamp("2024-07-03")  # before publication; the 4th is a holiday
    assert at("2024-07-05 18:30") == pd.Timestamp("2024-07-05")
    assert at("2024-07-07 12:00") == pd.Timestamp("2024-07-05")  # a Sunday


@pytest.fixture
def warehouse(tmp_path):
    wh = Warehouse(path=str(tmp_path / "wh.ducklake"))
    days = pd.to_datetime(["2024-07-01", "2024-07-02", "2024-07-03"])
    wh.replace_table("marts.prices", pd.DataFrame({"ticker": "AAPL", "date": days, "close": 1.0}))
    wh.replace_table("marts.signals", pd.DataFrame({"ticker": "AAPL", "date": days[:1]}))
    return wh


def test_freshness_counts_sessions_not_days(warehouse):
    # Friday evening after a Thursday holiday: marts.prices (to Wednesday) is one session behind, allowed
    friday = PmxSettings(as_of="2024-07-05T23:00:00Z")
    result = prices_are_fresh(warehouse=warehouse, settings=friday)
    assert result.passed and result.metadata["sessions_behind"].value == 1
    assert result.severity == dg.AssetCheckSeverity.WARN
    # Monday evening: two sessions behind
    monday = PmxSettings(as_of="2024-07-08T23:00:00Z")
    assert not prices_are_fresh(warehouse=warehouse, settings=monday).passed
    # signals stopped on the 1st: three sessions behind on Friday, and the check says so
    stale = signals_are_fresh(warehouse=warehouse, settings=friday)
    assert not stale.passed and stale.metadata["sessions_behind"].value == 3
    assert "2024-07-01" in stale.description
    # a truncated build is compared with its own end date
    assert signals_are_fresh(warehouse=warehouse, settings=PmxSettings(end_date="2024-07-01")).passed


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_failed_run_is_recorded_and_posted(tmp_path, monkeypatch):
    @dg.op
    def breaks():
        raise RuntimeError("the source is down")

    @dg.job
    def fragile():
        breaks()

    instance = dg.DagsterInstance.ephemeral()
    result = fragile.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PMX_ALERT_FILE", str(tmp_path / "alerts.jsonl"))
    monkeypatch.setenv("PMX_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/hook")
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=failure,
    ).for_run_failure()
    try:
        alert_on_run_failure(context)
    finally:
        server.shutdown()
    (record,) = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert record["job"] == "fragile" and record["failed_steps"] == ["breaks"]
    assert record["run_id"] == result.run_id and "breaks" in record["text"]
    assert _Hook.received[-1]["run_id"] == result.run_id


def test_network_steps_retry_with_backoff_and_the_sensor_is_registered():
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    for key in (["raw", "prices"], ["raw", "macro"]):
        node = graph.get(dg.AssetKey(key)).assets_def.node_def
        assert node.retry_policy == NETWORK_RETRY
    assert NETWORK_RETRY.backoff == dg.Backoff.EXPONENTIAL and NETWORK_RETRY.max_retries >= 3
    assert defs.resolve_sensor_def("alert_on_run_failure") is not None
