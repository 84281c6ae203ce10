"""Two sources that disagree on a session: precedence decides what marts.prices holds, and
marts.data_quality records the disagreement."""

import pytest

from dagster_pmx.defs.ingest.sources import BundledSource
from dagster_pmx.resources import PmxSettings
from tests.e2e.helpers import build_features, read


@pytest.mark.slow  # two feature builds; `make test-slow`
def test_user_files_win_over_the_bundled_source_and_the_disagreement_is_recorded(tmp_path):
    path = tmp_path / "pmx.ducklake"
    base = dict(tickers="AAPL", start_date="2011-01-01", end_date="2012-12-31", forecast_start="2012-06-01")
    assert build_features(path, PmxSettings(**base)).success
    bundled = BundledSource().prices(["AAPL"])
    bundled = bundled[bundled["date"].dt.year.between(2011, 2012)].reset_index(drop=True)
    mine = bundled[["date", "close"]].assign(date=lambda d: d["date"].dt.strftime("%Y-%m-%d"))
    planted = mine.loc[100, "date"]
    mine.loc[100, "close"] = mine.loc[100, "close"] * 1.01  # 1 % off the bundled close on one session
    folder = tmp_path / "mine"
    folder.mkdir()
    mine.to_csv(folder / "AAPL.csv", index=False)
    settings = PmxSettings(**base, source="csv", csv_dir=str(folder), benchmark="AAPL")
    assert build_features(path, settings).success
    # both sources are stored; marts.prices takes the user's file, everywhere it has the session
    sources = read(path, "select source, count(*) n from raw.prices where ticker = 'AAPL' group by 1")
    assert set(sources["source"]) == {"skfolio", "csv"}
    prices = read(path, "select date, adj_close from marts.prices where ticker = 'AAPL'").set_index("date")
    assert abs(prices.loc[planted, "adj_close"] / bundled.loc[100, "adj_close"] - 1.01) < 1e-9
    dq = read(path, "select * from marts.data_quality where finding = 'source_disagreement'")
    assert dq["ticker"].tolist() == ["AAPL"] and dq["source"].tolist() == ["csv"]
    assert dq["n_rows"].tolist() == [1] and str(dq["first_date"].iloc[0].date()) == planted
    assert "csv,skfolio" in dq["detail"].iloc[0] and "1.0 %" in dq["detail"].iloc[0]
