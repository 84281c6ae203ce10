"""Analysts and runs at the same time (issue 19), with real processes.

An analyst's session (``tests/e2e/reader_probe.py``, its own process) queries every ~0.2 s while a
daily refresh and then a full build run in other processes (``python -m dagster_pmx.cli``): no read
fails, every read equals the state some run left (never half a run), a connection held open keeps
its state, and the earlier states stay reachable (time travel). A run killed with ``kill -9`` leaves
readers where they were, and the next run completes with nothing lost from ``raw``.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dagster_pmx import run_points
from dagster_pmx.lake import Lake, current_snapshot
from dagster_pmx.reader import connect
from tests.e2e.helpers import CUT, SLICE
from tests.e2e.reader_probe import fingerprint

REPO = Path(__file__).resolve().parents[2]
#: The refreshes bring six months after the cut (the slice goes on to 2012: less to forecast in the test).
END = "2011-12-30"


def _env(tmp_path: Path, warehouse: Path, **overrides: str) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    if not home.exists():
        home.mkdir()
        shutil.copyfile(REPO / "dagster_pmx" / "dagster.yaml", home / "dagster.yaml")
    settings = {f"PMX_{k.upper()}": str(v) for k, v in SLICE.items()}
    overrides = {f"PMX_{k.upper()}": v for k, v in overrides.items()}
    return {
        **os.environ,
        **settings,
        **overrides,
        "PMX_WAREHOUSE": str(warehouse),
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(REPO),
    }


def _pmx_run(env: dict[str, str], job: str, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dagster_pmx.cli", "run", "--job", job],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _states_of_run_points(warehouse: Path) -> dict[int, list]:
    with Lake.at(warehouse).open(read_only=True) as head:
        snapshots = run_points.run_points(head)["snapshot_id"].tolist()
    states = {}
    for snapshot in snapshots:
        with connect(str(warehouse), snapshot=snapshot) as con:
            states[snapshot] = fingerprint(con)
    return states


def test_a_reader_queries_through_runs_and_a_killed_run_and_sees_only_whole_runs(truncated, tmp_path):
    """One analyst's session beside three runs: a daily refresh killed with ``kill -9`` once raw and the
    features are written, the same refresh again (it completes, nothing lost from raw), then a full
    build. Every read succeeds and equals the state some run left."""
    warehouse = tmp_path / "pmx.ducklake"
    Lake.at(truncated).copy_to(warehouse)
    with connect(str(warehouse)) as con:
        before = fingerprint(con)
        raw_before = con.execute("select ticker, date, source, close from raw.prices").df()
    reads, stop = tmp_path / "reads.jsonl", tmp_path / "stop"
    probe = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.reader_probe", str(warehouse), str(reads), str(stop)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    refresh_env = _env(tmp_path, warehouse, end_date=END)
    try:
        deadline = time.time() + 60
        while (not reads.exists() or len(reads.read_text().splitlines()) < 4) and time.time() < deadline:
            time.sleep(0.2)
        killed_log = tmp_path / "killed.log"
        killed = _pmx_run(refresh_env, "daily_refresh", killed_log)
        deadline = time.time() + 300
        while "success  dbt_features" not in killed_log.read_text() and time.time() < deadline:
            assert killed.poll() is None, killed_log.read_text()[-3000:]
            time.sleep(0.2)
        os.killpg(killed.pid, signal.SIGKILL)  # raw and the features are written; forecasts are under way
        killed.wait()
        with Lake.at(warehouse).open(read_only=True) as head:
            last_point = int(run_points.run_points(head)["snapshot_id"].iloc[0])
            assert current_snapshot(head) > last_point  # the killed run did commit work...
        with connect(str(warehouse)) as con:
            assert fingerprint(con) == before  # ...which no reader sees
        # the same refresh again: the killed run's pool slot is freed first (dagster_pmx.dead_runs)
        refresh = _pmx_run(refresh_env, "daily_refresh", tmp_path / "refresh.log")
        assert refresh.wait(timeout=600) == 0, (tmp_path / "refresh.log").read_text()[-3000:]
        assert "released run" in (tmp_path / "refresh.log").read_text()
        with connect(str(warehouse)) as con:
            raw_after = con.execute("select ticker, date, source, close from raw.prices").df()
        rebuild = _pmx_run(
            _env(tmp_path, warehouse, end_date=END, models="random_walk"), "full_build", tmp_path / "full.log"
        )
        assert rebuild.wait(timeout=600) == 0, (tmp_path / "full.log").read_text()[-3000:]
        time.sleep(1.0)  # a few reads of the final state
    finally:
        stop.touch()
        probe.wait(timeout=60)
    kept = raw_before.merge(raw_after, on=["ticker", "date", "source"], how="left", suffixes=("", "_after"))
    assert kept["close_after"].notna().all() and (kept["close"] == kept["close_after"]).all()
    assert len(raw_after) > len(raw_before)
    lines = [json.loads(line) for line in reads.read_text().splitlines()]
    errors = [r["error"] for r in lines if r["error"]]
    assert not errors, errors[:3]
    states = _states_of_run_points(warehouse)
    assert len(states) >= 3  # the cut's build, the refresh, the full build (the killed run left none)
    valid = [json.dumps(s) for s in states.values()]
    fresh = [json.dumps(r["state"]) for r in lines if r["kind"] == "fresh"]
    held = [json.dumps(r["state"]) for r in lines if r["kind"] == "held"]
    assert set(fresh) <= set(valid), "a reader saw a state no run left"
    assert len(set(fresh)) >= 2, "the fresh reader should have moved on to a later run's state"
    assert len(set(held)) == 1 and held[0] == fresh[0]  # a held connection keeps the state it opened on
    # time travel: the state before the refresh, by snapshot, is the cut's
    with connect(str(warehouse), snapshot=min(states)) as con:
        assert str(con.execute("select max(date) from marts.prices").fetchone()[0]) <= CUT
    with connect(str(warehouse)) as con:
        assert str(con.execute("select max(date) from marts.prices").fetchone()[0]) > CUT


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_a_deleted_or_corrupted_warehouse_is_restored_with_identical_marts(full, tmp_path, damage):
    from dagster_pmx import backup

    warehouse = tmp_path / "pmx.ducklake"
    lake = Lake.at(full).copy_to(warehouse)
    point = backup.backup(lake, tmp_path / "backups")
    assert backup.points(tmp_path / "backups")["name"].tolist() == [point.name]

    def marts() -> dict:
        with connect(str(warehouse)) as con:
            names = con.execute(
                "select table_name from information_schema.tables where table_catalog = 'pmx' "
                "and table_schema = 'marts' and table_type = 'BASE TABLE' order by 1"
            ).fetchall()
            return {n: con.execute(f"select * from marts.{n} order by all").df() for (n,) in names}

    before = marts()
    assert len(before) >= 20
    if damage == "delete":
        shutil.rmtree(lake.data_path)
        warehouse.unlink()
        with pytest.raises(FileNotFoundError):
            connect(str(warehouse))
    else:
        warehouse.write_bytes(b"not a catalog " * 4096)
        with pytest.raises(Exception):  # noqa: B017 (DuckDB's error for a damaged file varies)
            connect(str(warehouse))
    backup.restore(lake, point.name, tmp_path / "backups")
    after = marts()
    assert before.keys() == after.keys()
    for name, frame in before.items():
        assert frame.equals(after[name]), name
    if damage == "corrupt":  # the damaged catalog is kept beside, not overwritten
        assert list(tmp_path.glob("pmx.ducklake.replaced-*"))
    # a second point of an unchanged lake copies no data file: each is a hard link to the first point's
    second = backup.backup(lake, tmp_path / "backups")
    assert json.loads((second / backup.POINT_FILE).read_text())["files"] == 0
