"""Run points and retention: which states readers see, which are kept, and that expiry frees disk."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dagster_pmx import run_points
from dagster_pmx.lake import Lake, current_snapshot
from dagster_pmx.reader import connect


def _points(stamps: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(len(stamps))],
            "job": "daily_refresh",
            "snapshot_id": range(10, 10 * (len(stamps) + 1), 10),
            "recorded_at": pd.to_datetime(stamps),
        }
    )


def test_retention_keeps_the_last_point_of_each_recent_day_and_week():
    # three runs on Monday 2026-11-02, one a day to Friday 11-06, one on Monday 11-09 and 11-16
    stamps = ["2026-11-02 09:00", "2026-11-02 12:00", "2026-11-02 18:30"]
    stamps += [f"2026-11-0{d} 18:30" for d in range(3, 7)] + ["2026-11-09 18:30", "2026-11-16 18:30"]
    points = _points(stamps)
    snap = dict(zip(stamps, points["snapshot_id"], strict=True))
    # a hand count: the last 3 days with a run are 11-06, 11-09, 11-16; the last 2 weeks' last runs are
    # 11-09 (week of 11-09) and 11-16 (week of 11-16)
    assert run_points.kept(points, keep_daily=3, keep_weekly=2) == {
        snap["2026-11-06 18:30"],
        snap["2026-11-09 18:30"],
        snap["2026-11-16 18:30"],
    }
    # three weeks back reaches the week of 11-02, whose last run is Friday's
    assert snap["2026-11-06 18:30"] in run_points.kept(points, keep_daily=1, keep_weekly=3)
    assert snap["2026-11-02 18:30"] in run_points.kept(points, keep_daily=7, keep_weekly=0)
    assert snap["2026-11-02 12:00"] not in run_points.kept(points, keep_daily=30, keep_weekly=12)


def _run(con, run_id: str, rows: int) -> int:
    """A 'run' that rewrites a mart in two transactions, then records its run point."""
    con.execute("create schema if not exists marts")
    con.execute(f"create or replace table marts.a as select range as i from range({rows})")
    con.execute(f"create or replace table marts.b as select {rows} as n")
    return run_points.record(con, run_id, "full_build")


def test_readers_see_the_last_run_point_and_reach_earlier_ones(tmp_path):
    lake = Lake.at(tmp_path / "pmx.ducklake")
    with lake.open() as con:
        first = _run(con, "run-one", 10)
        second = _run(con, "run-two", 20)
        # a third run rewrites marts.a and fails before marts.b: no run point
        con.execute("create or replace table marts.a as select range as i from range(30)")
    with connect(lake=lake) as reader:  # the last run point: both tables from run two
        assert reader.execute("select (select count(*) from marts.a), (select n from marts.b)").fetchone() == (20, 20)
    with connect(lake=lake, run="run-one") as reader:
        assert reader.execute("select (select count(*) from marts.a), (select n from marts.b)").fetchone() == (10, 10)
    with connect(lake=lake, snapshot=second) as reader:
        assert reader.execute("select count(*) from marts.a").fetchone() == (20,)
    with connect(lake=lake, at=pd.Timestamp.now() + pd.Timedelta(days=1)) as reader:
        assert reader.execute("select count(*) from marts.a").fetchone() == (20,)
    with pytest.raises(LookupError, match="no run point for run"):
        connect(lake=lake, run="run-nine")
    with pytest.raises(LookupError, match="at or before"):
        connect(lake=lake, at="2000-01-01")
    assert first < second


def test_expiry_keeps_the_kept_run_points_and_cleaning_frees_the_files_of_the_rest(tmp_path):
    lake = Lake.at(tmp_path / "pmx.ducklake")
    files = lambda: sorted(tmp_path.rglob("marts/a/*.parquet"))  # noqa: E731 (each run's copy of marts.a)
    with lake.open() as con:
        con.execute("set ducklake_default_data_inlining_row_limit = 0")  # every insert a file
        snapshots = [_run(con, f"run-{i}", 1000 + i) for i in range(5)]
        assert len(files()) == 5
        # all five points were recorded today: one day kept, no week -> only the last stays
        expired = run_points.expire(con, keep_daily=1, keep_weekly=0)
        assert set(snapshots[:-1]) <= set(expired)
        assert run_points.run_points(con)["snapshot_id"].tolist() == [snapshots[-1]]
        removed = run_points.clean_files(con, grace="0 seconds")
        assert removed >= 4
        assert current_snapshot(con) > snapshots[-1]
    assert len(files()) == 1  # the last run's marts.a, and nothing older
    with connect(lake=lake) as reader:
        assert reader.execute("select count(*) from marts.a").fetchone() == (1004,)
    with pytest.raises(Exception, match="snapshot"):
        connect(lake=lake, snapshot=snapshots[0]).execute("select count(*) from marts.a")


def test_a_plain_duckdb_client_reads_the_last_run_point_with_the_documented_sql(tmp_path):
    """docs/warehouse.md's SQL, in PyPI's duckdb-cli (the same DuckDB release as the library)."""
    lake = Lake.at(tmp_path / "pmx.ducklake")
    with lake.open() as con:
        _run(con, "run-one", 10)
        con.execute("create or replace table marts.a as select range as i from range(30)")  # a run under way
    duckdb_cli = Path(sys.executable).with_name("duckdb")
    catalog = lake.sqlite_file
    head = subprocess.run(
        [
            str(duckdb_cli),
            "-csv",
            "-noheader",
            "-c",
            f"ATTACH 'ducklake:sqlite:{catalog}' AS head (READ_ONLY); "
            "SELECT max(snapshot_id) FROM head.ops.run_points;",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    snapshot = int(head.stdout.strip())
    pinned = subprocess.run(
        [
            str(duckdb_cli),
            "-csv",
            "-noheader",
            "-c",
            f"ATTACH 'ducklake:sqlite:{catalog}' AS pmx "
            f"(READ_ONLY, SNAPSHOT_VERSION {snapshot}); USE pmx; SELECT count(*) FROM marts.a;",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert pinned.stdout.strip() == "10"
