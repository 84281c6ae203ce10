"""Gaps: a missing session or a NULL price never produces a silently wrong feature."""

import numpy as np
import pandas as pd
import pytest

from dagster_pmx.resources import PmxSettings
from tests.e2e.helpers import build_features, read

N = 320


def _write(folder, ticker, frame):
    frame.to_csv(folder / f"{ticker}.csv", index=False)


def _series(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-02", periods=N)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, N)))
    return pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "close": close})


def _build_features(tmp_path, folder):
    path = tmp_path / "pmx.ducklake"
    settings = PmxSettings(source="csv", csv_dir=str(folder), benchmark="AAA", start_date="2015-01-01")
    return path, build_features(path, settings)


@pytest.fixture(scope="module")
def gapped(tmp_path_factory):
    """One feature build of both kinds of gap: BBB misses a session (row 150), and AAA's close is NULL on
    another (row 100) while BBB is priced that day, so the session stays in the calendar."""
    tmp = tmp_path_factory.mktemp("gap")
    folder = tmp / "csv"
    folder.mkdir()
    aaa = _series(1)
    aaa.loc[100, "close"] = np.nan
    _write(folder, "AAA", aaa)
    bbb = _series(2)
    missing = bbb["date"].iloc[150]
    _write(folder, "BBB", bbb.drop(index=150))
    path, result = _build_features(tmp, folder)
    assert result.success
    close = bbb.assign(date=pd.to_datetime(bbb["date"])).set_index("date")["close"]
    return path, pd.Timestamp(missing), close, pd.Timestamp(aaa.loc[100, "date"])


def test_missing_session_is_a_row_with_null_features(gapped):
    path, missing, _, _ = gapped
    f = read(path, "select * from marts.features where ticker = 'BBB' order by date").set_index("date")
    assert not f.loc[missing, "has_price"]
    assert pd.isna(f.loc[missing, "ret_1d"]) and pd.isna(f.loc[missing, "realized_vol_21"])
    assert f["has_price"].sum() == N - 1 and len(f) == N


def test_no_return_or_window_spans_the_gap(gapped):
    path, missing, close, _ = gapped
    f = read(path, "select * from marts.features where ticker = 'BBB' order by date").set_index("date")
    dates = f.index
    i = dates.get_loc(missing)
    # The session after the gap has no 1-day return (it would silently be a 2-day move).
    assert pd.isna(f["ret_1d"].iloc[i + 1])
    # 5-session returns: NULL when either end is the missing session, exact otherwise.
    assert pd.isna(f["ret_5d"].iloc[i + 5])
    np.testing.assert_allclose(f["ret_5d"].iloc[i + 6], close.iloc[i + 6] / close.iloc[i + 1] - 1, rtol=1e-12)
    # Every 21-session window holding the gap is NULL; the first full one after it is not.
    assert f["realized_vol_21"].iloc[i : i + 22].isna().all()
    assert f["realized_vol_21"].iloc[i + 22 :].notna().all()
    # Recursive smoothers restart after the gap with their warm-up.
    assert f["rsi_14"].iloc[i + 1 : i + 15].isna().all() and pd.notna(f["rsi_14"].iloc[i + 15])
    targets = read(path, "select * from marts.targets where ticker = 'BBB' order by date").set_index("date")
    assert pd.isna(targets["fwd_return_1d"].iloc[i - 1]) and pd.isna(targets["fwd_return_5d"].iloc[i - 5])


def test_a_null_price_is_quarantined_and_becomes_a_gap(gapped):
    path, _, _, day = gapped
    quarantine = read(path, "select date, reason from raw.quarantine")
    assert quarantine["reason"].tolist() == ["missing_close"] and quarantine["date"].iloc[0] == day
    # the session is a row without a price: no return into or out of it, as with a missing session
    sql = "select date, has_price, simple_return from intermediate.int_returns where ticker = 'AAA' order by date"
    r = read(path, sql).set_index("date")
    assert not r.loc[day, "has_price"] and pd.isna(r.loc[day, "simple_return"])
    assert pd.isna(r["simple_return"].iloc[r.index.get_loc(day) + 1])
