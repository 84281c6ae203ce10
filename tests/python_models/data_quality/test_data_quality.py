"""The data-quality wall: every defect gets the outcome it should, and every row is accounted for."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from numpy.testing import assert_allclose

from python_models.data_quality.normalise import SchemaError, normalise_columns
from python_models.data_quality.rules import RULES
from python_models.data_quality.wall import screen_prices

ROOT = Path(__file__).resolve().parents[3]

SESSIONS = pd.bdate_range("2021-01-04", periods=40)
NOW = pd.Timestamp("2021-06-01 20:00", tz="America/New_York")


def clean_frame(ticker="AAA", n=40, seed=0, volume=1e6):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame(
        {
            "ticker": ticker,
            "date": SESSIONS[:n],
            "open": close * 0.999,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "adj_close": close * 0.98,
            "volume": volume,
        }
    )


def screen(frame, **kw):
    return screen_prices(normalise_columns(frame), "test", sessions=SESSIONS, now=NOW, **kw)


def reasons(result):
    return dict(zip(result.quarantine["date"].dt.strftime("%Y-%m-%d"), result.quarantine["reason"], strict=True))


def accounted(frame, result, collapsed=0):
    """Every row received is clean, quarantined, or one of the identical copies collapsed."""
    assert len(result.clean) + len(result.quarantine) + collapsed == len(frame)


def test_clean_data_passes_untouched():
    frame = clean_frame()
    result = screen(frame)
    assert result.quarantine.empty and result.report.empty
    assert (result.clean["flags"] == "").all()
    assert_allclose(result.clean["close"], frame["close"])


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (
            lambda f: f.assign(close=f["close"].astype(object)).assign(
                close=lambda d: d["close"].where(d.index != 5, "n/a")
            ),
            "non_numeric",
        ),
        (lambda f: f.assign(date=f["date"].astype(str).where(f.index != 5, "2021-13-45")), "bad_date"),
        (lambda f: f.assign(close=f["close"].where(f.index != 5)), "missing_close"),
        (lambda f: f.assign(close=f["close"].where(f.index != 5, 0.0)), "non_positive_price"),
        (lambda f: f.assign(low=f["low"].where(f.index != 5, -1.0)), "non_positive_price"),
        (lambda f: f.assign(high=f["high"].where(f.index != 5, f["low"] * 0.9)), "inconsistent_ohlc"),
        (lambda f: f.assign(close=f["close"].where(f.index != 5, f["high"] * 1.05)), "inconsistent_ohlc"),
    ],
)
def test_bad_rows_are_quarantined_with_their_reason(mutate, reason):
    frame = mutate(clean_frame())
    result = screen(frame)
    assert list(result.quarantine["reason"]) == [reason]
    assert len(result.clean) == 39
    accounted(frame, result)
    row = json.loads(result.quarantine["row_json"].iloc[0])  # the row as it was received
    assert row["ticker"] == "AAA" and set(row) >= {"date", "close", "volume"}


def test_nan_row_is_quarantined_and_recorded_as_received():
    frame = clean_frame()
    frame.loc[7, ["open", "high", "low", "close", "adj_close", "volume"]] = np.nan
    result = screen(frame)
    assert list(result.quarantine["reason"]) == ["missing_close"]
    assert json.loads(result.quarantine["row_json"].iloc[0])["close"] is None
    # the gap it leaves is reported against the calendar, not filled
    missing = result.report[result.report["check_name"] == "missing_session"]
    assert missing["count"].tolist() == [1] and str(SESSIONS[7].date()) in missing["detail"].iloc[0]


def test_duplicates_identical_collapse_and_conflicting_go_to_quarantine():
    frame = clean_frame()
    twice = pd.concat([frame, frame.iloc[[3]]], ignore_index=True)
    result = screen(twice)
    assert result.quarantine.empty and len(result.clean) == 40
    assert result.report.loc[result.report["check_name"] == "duplicate_identical", "count"].tolist() == [1]
    accounted(twice, result, collapsed=1)
    other = frame.iloc[[3]].assign(close=frame["close"].iloc[3] * 1.001)
    conflict = pd.concat([frame, other], ignore_index=True)
    result = screen(conflict)
    assert (result.quarantine["reason"] == "duplicate_conflict").sum() == 2
    assert SESSIONS[3] not in set(result.clean["date"])
    accounted(conflict, result)


def test_todays_unfinished_bar_is_quarantined_and_kept_after_the_close():
    frame = clean_frame()
    last = SESSIONS[39]
    during = last.tz_localize("America/New_York") + pd.Timedelta(hours=11)
    result = screen_prices(normalise_columns(frame), "test", sessions=SESSIONS, now=during)
    assert reasons(result) == {str(last.date()): "unfinished_bar"}
    after = last.tz_localize("America/New_York") + pd.Timedelta(hours=17)
    assert screen_prices(normalise_columns(frame), "test", sessions=SESSIONS, now=after).quarantine.empty


def test_timezone_shifted_dates_are_moved_back_onto_the_calendar_with_a_flag():
    frame = clean_frame()
    shifted = frame.assign(date=frame["date"] - pd.Timedelta(days=1))  # UTC midnight read as New York
    result = screen(shifted)
    assert result.quarantine.empty
    assert list(result.clean["date"]) == list(SESSIONS)
    assert (result.clean["flags"] == "timezone_shifted(+1d)").all()
    assert result.report.loc[result.report["check_name"] == "timezone_shifted", "count"].tolist() == [40]


def test_tz_aware_timestamps_are_read_in_new_york_time():
    frame = clean_frame()
    frame["date"] = (frame["date"] + pd.Timedelta(hours=21)).dt.tz_localize("UTC")  # 16:00 New York
    result = screen(frame)
    assert list(result.clean["date"]) == list(SESSIONS) and result.quarantine.empty


def test_a_hundredfold_unit_jump_is_quarantined():
    frame = clean_frame()
    frame.loc[20, ["open", "high", "low", "close", "adj_close"]] *= 100
    result = screen(frame)
    assert reasons(result) == {str(SESSIONS[20].date()): "unit_jump"}
    frame = clean_frame()
    frame.loc[20, ["open", "high", "low", "close", "adj_close"]] /= 100
    assert reasons(screen(frame)) == {str(SESSIONS[20].date()): "unit_jump"}


def test_split_not_applied_to_the_adjusted_close_is_quarantined_but_a_proper_split_passes():
    frame = clean_frame()
    # a 2:1 split on day 20: the raw close halves; a correct adjusted close does not move
    proper = frame.copy()
    proper.loc[20:, ["open", "high", "low", "close"]] /= 2
    proper["adj_close"] /= 2  # backward adjustment: the whole adjusted history on the new share count
    result = screen(proper)
    assert result.quarantine.empty
    # the adjusted close not adjusted (it halves with the close) is a split jump
    missed = frame.copy()
    missed.loc[20:, ["open", "high", "low", "close", "adj_close"]] /= 2  # adjusted close follows the raw drop
    assert reasons(screen(missed)) == {str(SESSIONS[20].date()): "split_jump"}
    # applied twice: the adjusted history halved once more before the split
    twice = proper.copy()
    twice.loc[:19, "adj_close"] /= 2
    assert reasons(screen(twice)) == {str(SESSIONS[20].date()): "split_jump"}


def test_adjusted_close_inconsistent_with_close_is_quarantined():
    frame = clean_frame()
    frame.loc[25, "adj_close"] *= 1.4  # 40 % off the close's path, not a split ratio
    result = screen(frame)
    assert reasons(result)[str(SESSIONS[25].date())] == "adj_close_mismatch"


def test_zero_volume_while_the_price_moves_is_repaired_with_a_flag():
    frame = clean_frame()
    frame.loc[12, "volume"] = 0.0
    result = screen(frame)
    assert result.quarantine.empty
    row = result.clean[result.clean["date"] == SESSIONS[12]].iloc[0]
    assert np.isnan(row["volume"]) and row["flags"] == "zero_volume_move"


def test_a_ticker_that_sends_nothing_is_reported():
    result = screen(clean_frame(), requested=["AAA", "ZZZ"])
    no_data = result.report[result.report["check_name"] == "no_data"]
    assert no_data["ticker"].tolist() == ["ZZZ"]


def test_unsorted_input_is_sorted():
    frame = clean_frame().sample(frac=1.0, random_state=1)
    result = screen(frame)
    assert result.quarantine.empty and list(result.clean["date"]) == list(SESSIONS)


def test_schema_drift_is_mapped_or_refused():
    frame = clean_frame()
    renamed = frame.rename(columns={"adj_close": "Adj Close", "close": "Close", "date": "Date", "ticker": "Symbol"})
    assert_allclose(screen(renamed).clean["adj_close"], frame["adj_close"])
    with pytest.raises(SchemaError, match="close"):
        normalise_columns(frame.drop(columns=["close"]))
    # yfinance's multi-ticker layout: (field, ticker) columns
    wide = pd.concat(
        {t: clean_frame(t, seed=i).set_index("date").drop(columns="ticker") for i, t in enumerate(["AAA", "BBB"])},
        axis=1,
    ).swaplevel(axis=1)
    wide.columns = wide.columns.set_levels([c.replace("_", " ").title() for c in wide.columns.levels[0]], level=0)
    long = normalise_columns(wide)
    assert set(long["ticker"]) == {"AAA", "BBB"} and "adj_close" in long.columns
    result = screen_prices(long, "test", sessions=SESSIONS, now=NOW)
    assert len(result.clean) == 80 and result.quarantine.empty


def test_the_rules_table_names_every_reason_and_flag_once_in_the_order_applied():
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    assert [r.name for r in RULES if r.outcome == "quarantine"] == [
        "non_numeric",
        "bad_date",
        "missing_close",
        "non_positive_price",
        "inconsistent_ohlc",
        "duplicate_conflict",
        "unfinished_bar",
        "unit_jump",
        "split_jump",
        "adj_close_mismatch",
        "stale_close",
    ]
    assert [r.name for r in RULES if r.outcome == "repair"] == ["timezone_shifted", "zero_volume_move"]
    assert [r.name for r in RULES if r.outcome == "collapse"] == ["duplicate_identical"]


def _accepted_values(model):
    """The accepted_values of a dbt model's column tests anywhere under dbt_project/models."""
    found = {}
    for path in (ROOT / "dbt_project" / "models").rglob("*.yml"):
        for entry in (yaml.safe_load(path.read_text()) or {}).get("models", []):
            if entry.get("name") != model:
                continue
            for column in entry.get("columns", []):
                for test in column.get("data_tests", []) or []:
                    if isinstance(test, dict) and "accepted_values" in test:
                        spec = test["accepted_values"]
                        found[column["name"]] = set((spec.get("arguments") or spec)["values"])
    return found


def test_the_warehouse_accepts_exactly_the_reasons_and_findings_the_wall_gives():
    """dbt's accepted_values on the quarantine and the report guard other tables, but must name what the wall
    can write: the rules table is the one list."""
    reasons = {r.name for r in RULES if r.outcome == "quarantine"}
    findings = {"missing_session", "no_data"} | {r.name for r in RULES if r.outcome in ("repair", "collapse")}
    assert _accepted_values("stg_quarantine").get("reason", reasons) == reasons
    assert _accepted_values("stg_ingest_report").get("check_name", findings) == findings


def test_a_row_refused_for_its_move_still_counts_as_the_session_before_the_next():
    # a one-day glitch in the adjusted close: that day jumps by a split ratio, and so does the day after,
    # judged against it (a unit-jump row, by contrast, leaves the series)
    frame = clean_frame()
    frame.loc[20, "adj_close"] /= 2
    assert reasons(screen(frame)) == {str(SESSIONS[20].date()): "split_jump", str(SESSIONS[21].date()): "split_jump"}
    frame = clean_frame()
    frame.loc[20, ["open", "high", "low", "close", "adj_close"]] *= 100
    assert reasons(screen(frame)) == {str(SESSIONS[20].date()): "unit_jump"}


def test_a_copy_of_an_unfinished_bar_is_collapsed_and_quarantined_with_it():
    frame = clean_frame()
    twice = pd.concat([frame, frame.iloc[[39]]], ignore_index=True)
    during = SESSIONS[39].tz_localize("America/New_York") + pd.Timedelta(hours=11)
    result = screen_prices(normalise_columns(twice), "test", sessions=SESSIONS, now=during)
    assert result.quarantine["reason"].tolist() == ["unfinished_bar"] * 2 and len(result.clean) == 39
    assert result.report.loc[result.report["check_name"] == "duplicate_identical", "count"].tolist() == [1]


def _market_frame(stale_from=None, length=12, others_move=True):
    frames = [clean_frame(t, seed=i) for i, t in enumerate(("AAA", "BBB", "CCC"))]
    if stale_from is not None:
        rows = frames[0].index[stale_from : stale_from + length]
        frames[0].loc[rows, ["open", "high", "low", "close", "adj_close"]] = frames[0].loc[rows[0], "close"]
        if not others_move:
            for other in frames[1:]:
                other.loc[rows, ["open", "high", "low", "close", "adj_close"]] = other.loc[rows[0], "close"]
    return pd.concat(frames, ignore_index=True)


def test_a_stale_close_while_the_market_moves_is_quarantined_after_its_first_session():
    frame = _market_frame(stale_from=10, length=12)
    result = screen(frame)
    stale = result.quarantine[result.quarantine["reason"] == "stale_close"]
    assert stale["ticker"].unique().tolist() == ["AAA"]
    assert stale["date"].tolist() == list(SESSIONS[11:22])  # the 11 copies; the first close is kept
    assert (stale["detail"] == "close unchanged for 12 sessions").all()
    accounted(frame, result)
    # shorter runs, a market that stood still as well, and a ticker alone in its frame pass
    for quiet in (_market_frame(stale_from=10, length=9), _market_frame(stale_from=10, others_move=False)):
        assert "stale_close" not in set(screen(quiet).quarantine["reason"])
    alone = _market_frame(stale_from=10)
    assert "stale_close" not in set(screen(alone[alone["ticker"] == "AAA"]).quarantine["reason"])


def test_thousands_separators_and_decimal_commas_are_read_as_numbers():
    from python_models.data_quality.normalise import canonical_numbers, decimal_mark

    sent = pd.DataFrame({"Date": ["2021-01-04"] * 4, "Close": ["1,234.50", "987.25", "12,345,678", "1,23"]})
    assert canonical_numbers(sent)["Close"].tolist() == ["1234.50", "987.25", "12345678", "1,23"]  # the last: refused
    european = pd.DataFrame({"Date": ["2021-01-04"] * 4, "Close": ["1.234,50", "987,25", "12.345.678", "1,2,3"]})
    assert canonical_numbers(european, decimal=",")["Close"].tolist() == ["1234.50", "987.25", "12345678", "1,2,3"]
    # the mark is read from the numbers: a point file's "12,345" volume stays 12345
    assert decimal_mark(european.iloc[:3]) == "," and decimal_mark(sent) == "."
    points = pd.DataFrame({"Close": ["1.234", "2.5"], "Volume": ["12,345", "1,000"]})
    assert decimal_mark(points) == "."


def test_vendor_files_with_separators_semicolons_and_decimal_commas_load_like_a_plain_file(tmp_path):
    from dagster_pmx.defs.ingest.sources import CsvFolderSource as CsvSource

    plain = clean_frame("AAA").drop(columns="ticker")
    plain["date"] = plain["date"].dt.strftime("%Y-%m-%d")
    plain["close"] = plain["close"] * 20  # four-digit prices, so separators appear
    plain[["open", "high", "low", "adj_close"]] = plain[["open", "high", "low", "adj_close"]] * 20
    plain = plain.round(4)
    (tmp_path / "plain").mkdir()
    plain.to_csv(tmp_path / "plain" / "AAA.csv", index=False)
    expected = CsvSource(tmp_path / "plain").prices()
    (tmp_path / "thousands").mkdir()
    plain.assign(**{c: plain[c].map("{:,.4f}".format) for c in ("open", "high", "low", "close", "adj_close")}).to_csv(
        tmp_path / "thousands" / "AAA.csv", index=False
    )
    (tmp_path / "european").mkdir()
    euro = plain.assign(
        **{
            c: plain[c].map(lambda v: f"{v:,.4f}".replace(",", " ").replace(".", ",").replace(" ", "."))
            for c in ("open", "high", "low", "close", "adj_close", "volume")
        }
    )
    euro.to_csv(tmp_path / "european" / "AAA.csv", index=False, sep=";")
    for folder in ("thousands", "european"):
        got = CsvSource(tmp_path / folder).prices()
        screened = screen_prices(normalise_columns(got.drop(columns="source")), "csv", sessions=SESSIONS, now=NOW)
        reference = screen_prices(normalise_columns(expected.drop(columns="source")), "csv", sessions=SESSIONS, now=NOW)
        assert screened.quarantine.empty, folder
        assert_allclose(screened.clean["close"], reference.clean["close"], rtol=1e-12)
        assert_allclose(screened.clean["volume"], reference.clean["volume"], rtol=1e-12)
    (tmp_path / "tabs").mkdir()
    (tmp_path / "tabs" / "AAA.csv").write_text("day|price\n2021-01-04|1.0\n")
    with pytest.raises(SchemaError, match=r"AAA.csv: no delimiter of ',', ';', '\\t', '\|'"):
        CsvSource(tmp_path / "tabs").prices()
