"""Analysts and runs at the same time (issue 19), with real processes.

An analyst's session (``tests/e2e/reader_probe.py``, its own process) queries every ~0.2 s while a
daily refresh and then a full build run in other processes (``python -m dagster_pmx.cli``): no read
fails, every read equals the state some run left (never half a run), a connection held open keeps
its state, and the earlier states stay reachable (time travel). A run killed with ``kill -9`` leaves
readers where they were, and the next run completes with nothing lost from ``raw``.

The runs are ``tests/e2e/reader_scenario.py``, a process the session starts as soon as the truncated
build exists (tests/e2e/background.py): the test checks what it recorded.
"""

import json
import shutil

import pandas as pd
import pytest

from dagster_pmx import run_points
from dagster_pmx.lake import Lake
from dagster_pmx.reader import connect
from tests.e2e.helpers import CUT
from tests.e2e.reader_probe import fingerprint


def _states_of_run_points(warehouse) -> dict[int, list]:
    with Lake.at(warehouse).open(read_only=True) as head:
        snapshots = run_points.run_points(head)["snapshot_id"].tolist()
    states = {}
    for snapshot in snapshots:
        with connect(str(warehouse), snapshot=snapshot) as con:
            states[snapshot] = fingerprint(con)
    return states


def test_a_reader_queries_through_runs_and_a_killed_run_and_sees_only_whole_runs(reader_runs):
    """One analyst's session beside three runs: a daily refresh killed with ``kill -9`` once raw and the
    features are written, the same refresh again (it completes, nothing lost from raw), then a full
    build. Every read succeeds and equals the state some run left."""
    work = reader_runs
    warehouse = work / "pmx.ducklake"
    facts = json.loads((work / "scenario.json").read_text())
    assert facts["snapshot_after_kill"] > facts["last_run_point"]  # the killed run did commit work...
    assert facts["state_after_kill"] == facts["state_before"]  # ...which no reader sees
    # the same refresh again: the killed run's pool slot is freed first (dagster_pmx.dead_runs)
    refresh_log = (work / "refresh.log").read_text()
    assert facts["refresh_exit"] == 0, refresh_log[-3000:]
    assert "released run" in refresh_log
    assert facts["full_exit"] == 0, (work / "full.log").read_text()[-3000:]
    raw_before, raw_after = pd.read_parquet(work / "raw_before.parquet"), pd.read_parquet(work / "raw_after.parquet")
    kept = raw_before.merge(raw_after, on=["ticker", "date", "source"], how="left", suffixes=("", "_after"))
    assert kept["close_after"].notna().all() and (kept["close"] == kept["close_after"]).all()
    assert len(raw_after) > len(raw_before)
    lines = [json.loads(line) for line in (work / "reads.jsonl").read_text().splitlines()]
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
