"""Tier 2: assets and checks called as plain functions on a temporary warehouse."""

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from dagster_pmx.defs.ingest.assets import raw_macro, raw_prices
from dagster_pmx.defs.ingest.checks import raw_prices_expectations
from dagster_pmx.defs.ingest.sources import BundledSource, CsvFolderSource, _skfolio_dataset, _yyyymm_to_date
from dagster_pmx.defs.portfolio.checks import allocations_expectations
from dagster_pmx.resources import PmxSettings, Warehouse
from python_models.portfolio.sizing import kelly_book


def _csv(folder, name, frame):
    folder.mkdir(exist_ok=True)
    frame.to_csv(folder / name, index=False)


def _prices(n=5, start="2020-01-02", close=100.0):
    dates = pd.bdate_range(start, periods=n)
    closes = close + np.arange(n)
    return pd.DataFrame(
        {
            "Date": dates.strftime("%Y-%m-%d"),
            "Open": closes,
            "High": closes + 1,
            "Low": closes - 1,
            "Close": closes,
            "Volume": 1000,
        }
    )


@pytest.fixture
def warehouse(tmp_path):
    return Warehouse(path=str(tmp_path / "wh.ducklake"))


def _table(warehouse, sql):
    return warehouse.query(sql)


def test_bundled_source_is_real_data_in_the_raw_schema():
    prices = BundledSource().prices(["AAPL", "SP500"])
    assert set(prices["ticker"]) == {"AAPL", "SP500"}
    assert set(prices["source"]) == {"skfolio", "arch"}
    aapl = prices[prices["ticker"] == "AAPL"]
    assert aapl["date"].min() == pd.Timestamp("1990-01-02") and len(aapl) > 8000
    assert aapl["open"].isna().all()  # close-only
    arch_rows = prices[prices["source"] == "arch"]
    assert (arch_rows["high"] >= arch_rows["low"]).all() and arch_rows["volume"].gt(0).all()


@pytest.mark.parametrize("name", ["sp500_dataset", "sp500_index"])
def test_skfolios_data_read_without_importing_skfolio_is_what_its_loader_returns(name):
    from skfolio import datasets

    pd.testing.assert_frame_equal(_skfolio_dataset(name), getattr(datasets, f"load_{name}")())


def test_frenchdata_dates_are_parsed_from_yyyymm():
    idx = pd.DatetimeIndex(pd.to_datetime([192607, 201811], unit="ns"))
    assert list(_yyyymm_to_date(idx)) == [pd.Timestamp("1926-07-01"), pd.Timestamp("2018-11-01")]
    macro = BundledSource().macro()
    rf = macro[macro["series_id"] == "RF"]
    assert rf["date"].min() == pd.Timestamp("1926-07-01") and rf["unit"].iloc[0] == "percent_per_month"


def test_raw_prices_upsert_is_idempotent_and_keeps_stored_rows(tmp_path, warehouse):
    folder = tmp_path / "csv"
    _csv(folder, "AAA.csv", _prices(5))
    settings = PmxSettings(source="csv", csv_dir=str(folder), benchmark="AAA")
    ctx = dg.build_asset_context()
    list(raw_prices(ctx, warehouse=warehouse, settings=settings))
    first = _table(warehouse, "select * from raw.prices order by all")
    list(raw_prices(ctx, warehouse=warehouse, settings=settings))
    pd.testing.assert_frame_equal(first, _table(warehouse, "select * from raw.prices order by all"))
    assert len(first) == 5
    # A later file with the last two sessions corrected and two new ones: old rows stay,
    # corrected rows are replaced, new rows are added.
    update = _prices(4, start="2020-01-07", close=150.0)
    _csv(folder, "AAA.csv", update)
    list(raw_prices(ctx, warehouse=warehouse, settings=settings))
    after = _table(warehouse, "select * from raw.prices order by date")
    assert len(after) == 7
    assert after["close"].iloc[:3].tolist() == first["close"].iloc[:3].tolist()
    assert after["close"].iloc[3] == 150.0
    # the replaced rows are kept, as they were, in the audit table
    audit = _table(warehouse, "select * from raw.prices_audit order by date")
    assert audit["close"].tolist() == first["close"].iloc[3:].tolist() and audit["replaced_at"].notna().all()
    # ingested_at tells the incremental models what changed: only corrected and new rows move.
    assert after["ingested_at"].iloc[:3].tolist() == first["ingested_at"].iloc[:3].tolist()
    assert (after["ingested_at"].iloc[3:] > first["ingested_at"].max()).all()


def test_csv_source_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError):
        CsvFolderSource(tmp_path / "missing")
    folder = tmp_path / "bad"
    _csv(folder, "X.csv", pd.DataFrame({"when": ["2020-01-01"], "px": [1.0]}))
    with pytest.raises(ValueError, match=r"X.csv: no delimiter of ',', ';', '\\t', '\|' splits the header"):
        CsvFolderSource(folder).prices()


def test_raw_macro_loads_bundled_series(warehouse):
    raw_macro(dg.build_asset_context(), warehouse=warehouse, settings=PmxSettings(end_date="2000-12-31"))
    got = _table(warehouse, "select series_id, count(*) n, max(date) as last from raw.macro group by 1")
    assert set(got["series_id"]) == {"Mkt-RF", "SMB", "HML", "RF", "AAA", "BAA", "CPILFESL"}
    assert (got["last"] <= pd.Timestamp("2000-12-31")).all()


@pytest.mark.parametrize(
    "corrupt, reason",
    [
        # in the default run: the end-to-end defective-CSV test that plants them too is slow
        # (tests/e2e/test_pipeline.py)
        (lambda f: f.assign(Close=f["Close"].where(f.index != 2, -5.0)), "non_positive_price"),
        (lambda f: f.assign(High=f["High"].where(f.index != 1, 50.0)), "inconsistent_ohlc"),
        (lambda f: f.assign(Close=f["Close"].astype(str).where(f.index != 3, "#N/A")), "non_numeric"),
    ],
)
def test_corrupt_rows_are_quarantined_and_nothing_stored_is_lost(tmp_path, warehouse, corrupt, reason):
    folder = tmp_path / "csv"
    good = _prices(5)
    _csv(folder, "AAA.csv", good)
    settings = PmxSettings(source="csv", csv_dir=str(folder), benchmark="AAA")
    list(raw_prices(dg.build_asset_context(), warehouse=warehouse, settings=settings))
    stored = _table(warehouse, "select * from raw.prices order by date")
    _csv(folder, "AAA.csv", corrupt(good))
    for _ in range(2):  # a second ingest of the same file changes nothing
        list(raw_prices(dg.build_asset_context(), warehouse=warehouse, settings=settings))
        pd.testing.assert_frame_equal(stored, _table(warehouse, "select * from raw.prices order by date"))
        quarantine = _table(warehouse, "select * from raw.quarantine")
        assert quarantine["reason"].tolist() == [reason] and quarantine["source"].tolist() == ["csv"]
    assert raw_prices_expectations(warehouse=warehouse).passed


def test_raw_prices_gate_still_fails_on_a_table_corrupted_behind_the_wall(tmp_path, warehouse):
    folder = tmp_path / "csv"
    _csv(folder, "AAA.csv", _prices(5))
    settings = PmxSettings(source="csv", csv_dir=str(folder), benchmark="AAA")
    list(raw_prices(dg.build_asset_context(), warehouse=warehouse, settings=settings))
    with warehouse.connect() as con:
        con.execute("update raw.prices set close = -5 where date = '2020-01-06'")
    result = raw_prices_expectations(warehouse=warehouse)
    assert not result.passed and "close" in result.description


def _stored(n=6):
    """Rows as raw.prices holds them after the wall."""
    closes = 100.0 + np.arange(n)
    return pd.DataFrame(
        {
            "ticker": "AAA",
            "date": pd.bdate_range("2020-01-02", periods=n),
            "open": closes,
            "high": closes + 1,
            "low": closes - 1,
            "close": closes,
            "adj_close": closes,
            "volume": 1000.0,
            "source": "csv",
        }
    )


@pytest.mark.parametrize(
    "rule, corrupt",
    [
        ("bad_date", lambda f: f.assign(date=f["date"].where(f.index != 2))),
        ("missing_close", lambda f: f.assign(close=f["close"].where(f.index != 2))),
        *[
            ("non_positive_price", lambda f, c=c: f.assign(**{c: f[c].where(f.index != 2, -1.0)}))
            for c in ("open", "high", "low", "close", "adj_close")
        ],
        ("inconsistent_ohlc", lambda f: f.assign(high=f["high"].where(f.index != 2, f["low"] - 1))),
        ("duplicate_conflict", lambda f: pd.concat([f, f.iloc[[2]].assign(close=101.5)], ignore_index=True)),
    ],
)
def test_the_gate_checks_again_each_wall_rule_a_stored_table_can_show(rule, corrupt):
    """The raw/prices suite is built from the wall's rules table: a stored row the wall refuses for a gated
    rule fails the gate, on the expectations built from that rule's row of the table."""
    from expectations import raw_prices as suite
    from expectations.runner import validate
    from python_models.data_quality.wall import screen_prices

    assert suite.check(_stored()).success
    bad = corrupt(_stored())
    assert rule in set(screen_prices(bad.drop(columns="source"), "csv").quarantine["reason"])
    assert not suite.check(bad).success
    own = [suite.expectation(g) for name, g in suite.gates() if name == rule]
    assert own and not validate(bad, "own", own).success


def test_parquet_and_long_files_are_read_and_a_missing_ticker_is_reported(tmp_path, warehouse):
    folder = tmp_path / "files"
    folder.mkdir()
    long = pd.concat([_prices(5).assign(Symbol=t) for t in ("AAA", "BBB")])
    with duckdb.connect() as con:  # no pyarrow here: DuckDB writes the Parquet file
        con.register("long", long)
        con.execute(f"copy long to '{folder / 'universe.parquet'}' (format parquet)")
    settings = PmxSettings(source="csv", csv_dir=str(folder), benchmark="AAA", tickers="AAA,BBB,CCC")
    list(raw_prices(dg.build_asset_context(), warehouse=warehouse, settings=settings))
    got = _table(warehouse, "select ticker, count(*) n from raw.prices group by 1 order by 1")
    assert got["ticker"].tolist() == ["AAA", "BBB"] and got["n"].tolist() == [5, 5]
    report = _table(warehouse, "select * from raw.ingest_report")
    assert report.loc[report["check_name"] == "no_data", "ticker"].tolist() == ["CCC"]


def _store_allocations(warehouse, frame):
    warehouse.replace_table("marts.allocations", frame)


def test_allocation_weights_respect_caps_and_sum_to_one(warehouse):
    dates = pd.bdate_range("2021-01-04", periods=3)
    signals = pd.DataFrame(
        {
            "strategy": "s",
            "ticker": np.repeat(list("ABCDEFGHIJKL"), 3),
            "date": np.tile(dates, 12),
            "expected_return": 0.05,
            "forecast_std": 0.1,
        }
    )
    settings = PmxSettings()
    frame = kelly_book(signals, settings.kelly_fraction, settings.position_cap, settings.max_gross)
    totals = frame.groupby("date")["weight"].sum()
    np.testing.assert_allclose(totals, 1.0)
    risky = frame[frame["sleeve"] == "risky"]
    assert risky["weight"].max() <= settings.position_cap + 1e-12
    # 12 tickers at the 10 % cap would be 120 %: scaled to 100 % gross, no cash left.
    np.testing.assert_allclose(risky.groupby("date")["weight"].sum(), 1.0)
    _store_allocations(warehouse, frame)
    assert allocations_expectations(dg.build_asset_check_context(), warehouse=warehouse, settings=settings).passed


@pytest.mark.parametrize(
    "mutate",
    [
        lambda f: f.assign(weight=f["weight"].where(f.index != 0, 0.25)),  # over the position cap
        lambda f: f.assign(weight=f["weight"].where(f.index != 0, np.nan)),  # not finite
        lambda f: pd.concat([f, f.iloc[[0]]]),  # duplicated key
    ],
)
def test_allocation_check_fails_on_bad_weights(warehouse, mutate):
    dates = pd.bdate_range("2021-01-04", periods=2)
    signals = pd.DataFrame(
        {
            "strategy": "s",
            "ticker": np.repeat(["A", "B"], 2),
            "date": np.tile(dates, 2),
            "expected_return": 0.01,
            "forecast_std": 0.1,
        }
    )
    frame = kelly_book(signals)
    _store_allocations(warehouse, mutate(frame).reset_index(drop=True))
    context = dg.build_asset_check_context()
    assert not allocations_expectations(context, warehouse=warehouse, settings=PmxSettings()).passed


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("PMX_TICKERS", " aapl, msft ")
    monkeypatch.setenv("PMX_TRAIN_WINDOW", "500")
    monkeypatch.setenv("PMX_COST_BPS", "2.5")
    s = PmxSettings.from_env()
    assert s.ticker_list == ["AAPL", "MSFT"] and s.train_window == 500 and s.cost_bps == 2.5
    assert not s.full_refresh
    monkeypatch.setenv("PMX_FULL_REFRESH", "TRUE")
    assert PmxSettings.from_env().full_refresh
    monkeypatch.setenv("PMX_FULL_REFRESH", "sometimes")
    with pytest.raises(ValueError, match="PMX_FULL_REFRESH='sometimes' is not a boolean"):
        PmxSettings.from_env()
    monkeypatch.setenv("PMX_FULL_REFRESH", "0")
    monkeypatch.setenv("PMX_REFIT_EVERY", "weekly")
    with pytest.raises(ValueError, match="PMX_REFIT_EVERY='weekly' is not a valid int"):
        PmxSettings.from_env()


def _calendar(warehouse, dates, priced: dict):
    """int_sessions and int_returns with ``priced[ticker]`` flags per date."""
    warehouse.replace_table(
        "intermediate.int_sessions", pd.DataFrame({"date": dates, "session_index": range(1, len(dates) + 1)})
    )
    rows = [
        {"ticker": t, "date": d, "has_price": flag}
        for t, flags in priced.items()
        for d, flag in zip(dates, flags, strict=True)
    ]
    warehouse.replace_table("intermediate.int_returns", pd.DataFrame(rows))


def test_no_trading_on_stale_prices(warehouse):
    from dagster_pmx.defs.portfolio.checks import allocations_on_fresh_prices

    dates = pd.bdate_range("2021-01-04", periods=4)
    _calendar(warehouse, dates, {"A": [True, True, True, True], "B": [True, True, False, True]})
    frame = pd.DataFrame(
        {"strategy": "s", "date": np.repeat(dates, 2), "ticker": ["A", "B"] * 4, "weight": 0.1, "sleeve": "risky"}
    )
    _store_allocations(
        warehouse, frame.assign(weight=np.where((frame["ticker"] == "B") & (frame["date"] == dates[2]), 0.0, 0.1))
    )
    assert allocations_on_fresh_prices(
        dg.build_asset_check_context(), warehouse=warehouse
    ).passed  # no position in B on its missing session
    _store_allocations(warehouse, frame)  # a position in B decided on a session without a B price
    result = allocations_on_fresh_prices(dg.build_asset_check_context(), warehouse=warehouse)
    assert not result.passed
    _store_allocations(warehouse, pd.concat([frame.iloc[:2], frame.iloc[:1].assign(ticker="Z")]).reset_index(drop=True))
    assert not allocations_on_fresh_prices(
        dg.build_asset_check_context(), warehouse=warehouse
    ).passed  # a ticker never priced


CRASH = """
import os, sys
import dagster as dg
from dagster_pmx.defs.ingest import assets
from dagster_pmx.resources import PmxSettings, Warehouse

real, calls = assets.write_batch, []

def write_then_die(*args, **kwargs):
    out = real(*args, **kwargs)
    calls.append(1)
    if len(calls) == 2:
        os._exit(9)  # killed between batches: no cleanup, no exception handling
    return out

assets.write_batch = write_then_die
assets.BATCH_ROWS = 30  # one ticker per transaction
settings = PmxSettings(source="csv", csv_dir=sys.argv[2], benchmark="AAA")
list(assets.raw_prices(dg.build_asset_context(), warehouse=Warehouse(path=sys.argv[1]), settings=settings))
"""


def test_a_crash_between_batches_leaves_whole_tickers_and_the_next_run_completes(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    folder = tmp_path / "csv"
    for i, ticker in enumerate(["AAA", "BBB", "CCC"]):
        _csv(folder, f"{ticker}.csv", _prices(30, close=100.0 + 10 * i))
    crashed, clean = tmp_path / "crashed.ducklake", tmp_path / "clean.ducklake"
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    root = str(Path(__file__).resolve().parents[2])  # the child imports pmx however pytest was started
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, str(script), str(crashed), str(folder)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 9, run.stderr
    wh = Warehouse(path=str(crashed))
    after_crash = _table(wh, "select ticker, count(*) n from raw.prices group by 1 order by 1")
    assert after_crash["ticker"].tolist() == ["AAA", "BBB"] and after_crash["n"].tolist() == [30, 30]
    settings = PmxSettings(source="csv", csv_dir=str(folder), benchmark="AAA")
    list(raw_prices(dg.build_asset_context(), warehouse=wh, settings=settings))
    reference = Warehouse(path=str(clean))
    list(raw_prices(dg.build_asset_context(), warehouse=reference, settings=settings))
    columns = "ticker, date, open, high, low, close, adj_close, volume, source, flags"
    pd.testing.assert_frame_equal(
        _table(wh, f"select {columns} from raw.prices order by all"),
        _table(reference, f"select {columns} from raw.prices order by all"),
    )
    assert _table(wh, "select count(*) n from raw.prices_audit")["n"].iloc[0] == 0  # nothing was rewritten


def test_run_config_refreshes_only_the_chosen_ticker(tmp_path, warehouse):
    from dagster_pmx.defs.ingest.assets import IngestConfig

    folder = tmp_path / "csv"
    for ticker in ("AAA", "BBB"):
        _csv(folder, f"{ticker}.csv", _prices(5))
    settings = PmxSettings(source="csv", csv_dir=str(folder), benchmark="AAA")
    list(raw_prices(dg.build_asset_context(), warehouse=warehouse, settings=settings))
    for ticker in ("AAA", "BBB"):  # both files now carry a corrected last session
        _csv(folder, f"{ticker}.csv", _prices(5).assign(Close=lambda f: f["Close"].where(f.index != 4, 104.5)))
    config = IngestConfig(tickers=["bbb"])
    list(raw_prices(dg.build_asset_context(), warehouse=warehouse, settings=settings, config=config))
    last = _table(warehouse, "select ticker, close from raw.prices where date = '2020-01-08' order by 1")
    assert last["close"].tolist() == [104.0, 104.5]  # AAA untouched, BBB refreshed
    assert _table(warehouse, "select ticker from raw.prices_audit")["ticker"].tolist() == ["BBB"]


def test_the_refresh_job_reaches_the_backtest():
    from dagster_pmx.definitions import defs

    job = defs.resolve_job_def("refresh_tickers")
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert {"raw/prices", "raw/quarantine", "marts/data_quality", "marts/backtest_summary"} <= keys
    assert "raw/macro" not in keys


def test_allocation_check_validates_the_rows_the_latest_materialization_appended(warehouse):
    dates = pd.bdate_range("2021-01-04", periods=3)
    signals = pd.DataFrame(
        {"strategy": "s", "ticker": np.repeat(["A", "B"], 3), "date": np.tile(dates, 2), "expected_return": 0.01}
    ).assign(forecast_std=0.1)
    frame = kelly_book(signals).reset_index(drop=True)
    old_bad = frame["weight"].where(~((frame["date"] == dates[0]) & (frame["ticker"] == "A")), 0.25)
    _store_allocations(warehouse, frame.assign(weight=old_bad))  # over the cap, but before the append
    instance = dg.DagsterInstance.ephemeral()
    appended = dg.AssetMaterialization(["marts", "allocations"], metadata={"appended_after": str(dates[0].date())})
    instance.report_runless_asset_event(appended)
    context = dg.build_asset_check_context(instance=instance)
    result = allocations_expectations(context, warehouse=warehouse, settings=PmxSettings())
    assert result.passed and result.metadata["rows"].value == (frame["date"] > dates[0]).sum()
    # a bad row the append wrote fails it; so does the old one once the whole table is rewritten
    new_bad = old_bad.where(~((frame["date"] == dates[2]) & (frame["ticker"] == "B")), 0.25)
    _store_allocations(warehouse, frame.assign(weight=new_bad))
    assert not allocations_expectations(context, warehouse=warehouse, settings=PmxSettings()).passed
    _store_allocations(warehouse, frame.assign(weight=old_bad))
    instance.report_runless_asset_event(dg.AssetMaterialization(["marts", "allocations"]))
    assert not allocations_expectations(context, warehouse=warehouse, settings=PmxSettings()).passed


def test_ingest_batches_hold_whole_tickers_up_to_the_row_bound():
    from dagster_pmx.defs.ingest.assets import whole_groups

    frame = pd.DataFrame({"ticker": list("AAABBCCCCD"), "value": range(10)})
    batches = whole_groups(frame, "ticker", 5)
    # A+B fit in 5 rows; C (4) would overflow them; C+D fit; no ticker is split
    assert [sorted(set(b["ticker"])) for b in batches] == [["A", "B"], ["C", "D"]]
    assert pd.concat(batches).sort_index().equals(frame)
    assert [len(b) for b in whole_groups(frame, "ticker", 2)] == [3, 2, 4, 1]  # a larger ticker alone


@pytest.mark.parametrize(
    "first, last",
    [
        ("2022-12-20", "2022-12-28"),
        ("2010-01-04", "2022-12-28"),
        ("1990-01-02", "2022-12-28"),  # before the shared calendar's first session
        ("2026-12-01", "2026-12-31"),
    ],
)
def test_exchange_sessions_are_the_sessions_a_calendar_built_for_the_span_has(first, last, monkeypatch):
    """A span the freshness checks' calendar covers is read from it; an older one gets its own calendar:
    either way, the sessions exchange_calendars gives for that span (a week either side)."""
    import exchange_calendars as xcals

    from dagster_pmx.defs.ingest.assets import exchange_sessions
    from dagster_pmx.defs.operations.calendar import covers

    dates = pd.Series(pd.to_datetime([first, last]))
    week = pd.Timedelta(days=7)
    expected = xcals.get_calendar("XNYS", start=pd.Timestamp(first) - week, end=pd.Timestamp(last) + week).sessions
    if covers(pd.Timestamp(first) - week, pd.Timestamp(last) + week):
        # the shared calendar (built by covers above) answers: no other calendar is built
        monkeypatch.setattr(xcals, "get_calendar", lambda *a, **k: pytest.fail("built a second calendar"))
    assert exchange_sessions(dates).equals(pd.DatetimeIndex(expected))
