"""Incremental refresh: appending sessions or restating a price gives the full build's rows."""

import pandas as pd
import pytest

from dagster_pmx.lake import Lake
from dagster_pmx.resources import PmxSettings
from tests.e2e.helpers import SLICE, build_features, dbt_run, read, without_stamps

MARTS = {"features": "ticker, date", "targets": "ticker, date", "prices": "ticker, date"}


def mart(path, name: str) -> pd.DataFrame:
    return without_stamps(read(path, f"select * from marts.{name} order by {MARTS[name]}"))


def assert_marts_equal(a, b) -> None:
    for name in MARTS:
        x, y = mart(a, name), mart(b, name)
        assert len(x) == len(y) > 0, name
        pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-10, atol=1e-12, check_dtype=False, obj=name)


#: The session after the truncated build's last one (helpers.CUT, 2011-06-30).
NEXT_SESSION = "2011-07-01"


def test_appending_sessions_gives_the_full_builds_rows(truncated, full, tmp_path):
    path = tmp_path / "pmx.ducklake"
    Lake.at(truncated).copy_to(path)  # the slice built up to CUT (its features and targets by dbt_features)
    before = read(path, "select max(refreshed_at) as at from marts.features")["at"].iloc[0]
    # one new session, as the daily refresh sees it
    assert build_features(path, PmxSettings(**{**SLICE, "end_date": NEXT_SESSION})).success
    touched = read(
        path,
        "select min(date) as first, count(distinct date) as n from marts.features where refreshed_at > ?",
        [before],
    )
    assert touched["first"].iloc[0] == pd.Timestamp(NEXT_SESSION) and touched["n"].iloc[0] == 1
    # then the rest of the slice at once: targets up to 63 sessions back become computable
    assert build_features(path, PmxSettings(**SLICE)).success
    assert_marts_equal(path, full)


@pytest.mark.slow  # three dbt runs; `make test-slow`
def test_a_restated_price_is_recomputed_from_its_date_and_a_rerun_changes_nothing(full, tmp_path):
    path = tmp_path / "pmx.ducklake"
    Lake.at(full).copy_to(path)
    with Lake.at(path).open() as con:
        changed = con.execute(
            "update raw.prices set adj_close = adj_close * 1.05, ingested_at = now()::timestamp "
            "where ticker = 'JPM' and date = '2010-03-15' returning source"
        ).fetchall()
    assert len(changed) == 1
    dbt_run(path, tmp_path)
    stamps = read(
        path,
        "select date >= '2010-03-15' as after, min(refreshed_at) as lo, max(refreshed_at) as hi "
        "from marts.features group by 1",
    ).set_index("after")
    assert stamps.loc[False, "hi"] < stamps.loc[True, "lo"]  # only rows from the restated date on were rewritten
    around = "select date, ret_1d from marts.features where ticker = 'JPM' and date between ? and ? order by date"
    jpm = read(path, around, ["2010-03-12", "2010-03-16"])
    old = read(full, around, ["2010-03-12", "2010-03-16"])
    assert abs((1 + jpm["ret_1d"].iloc[1]) / (1 + old["ret_1d"].iloc[1]) - 1.05) < 1e-9

    rebuilt = tmp_path / "rebuilt.ducklake"
    Lake.at(path).copy_to(rebuilt)
    dbt_run(rebuilt, tmp_path, "--full-refresh")
    assert_marts_equal(path, rebuilt)

    at = read(path, "select max(refreshed_at) as at from marts.features")["at"].iloc[0]
    dbt_run(path, tmp_path)
    assert read(path, "select max(refreshed_at) as at from marts.features")["at"].iloc[0] == at
    assert_marts_equal(path, rebuilt)
