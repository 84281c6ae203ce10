"""Run points: the lake snapshot each successful run left, what readers see and what is kept.

A run commits many transactions (one per asset, one per dbt model); readers must see none of a run
or all of it. When a run succeeds, :func:`record` writes a row to ``ops.run_points`` naming the
snapshot its last write left. :func:`dagster_pmx.reader.connect` attaches the lake at the latest
run point (or an earlier one: time travel), so a query never joins tables from two states.

:func:`expire` keeps, for time travel and restores, the last run point of each of the last
``keep_daily`` days and of each of the last ``keep_weekly`` ISO weeks, and expires every other
snapshot; :func:`clean_files` then deletes the Parquet files no kept snapshot reads.
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from dagster_pmx.lake import ALIAS, current_snapshot, ensure, in_transaction

TABLE = "ops.run_points"
DDL = f"""
create table if not exists {TABLE} (
    run_id varchar not null, job varchar not null, snapshot_id bigint not null, recorded_at timestamp not null
)"""

#: Files no snapshot reads any more are deleted only this long after they were dropped: a reader
#: still attached at an expired snapshot keeps reading for that long.
FILE_GRACE = "1 day"


def record(con: duckdb.DuckDBPyConnection, run_id: str, job: str) -> int:
    """Record that run ``run_id`` of ``job`` succeeded, at the lake's current snapshot; returns its id.

    The run point's own row is one more snapshot (and carries the run id in its commit message), so
    the state readers see is exactly the run's last write.
    """
    ensure(con, "create schema if not exists ops", DDL)
    snapshot = current_snapshot(con)

    def write() -> None:
        extra = json.dumps({"run_id": run_id, "job": job, "snapshot_id": snapshot})
        con.execute(f"call {ALIAS}.set_commit_message('pmx', 'run point', extra_info => ?)", [extra])
        con.execute(f"insert into {TABLE} values (?, ?, ?, now()::timestamp)", [run_id, job, snapshot])

    in_transaction(con, write)
    return snapshot


def run_points(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every run point still reachable (not expired), newest first; empty before the first run."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_catalog = ? and table_schema = 'ops' "
        "and table_name = 'run_points'",
        [ALIAS],
    ).fetchone()[0]
    if not exists:
        return pd.DataFrame(columns=["run_id", "job", "snapshot_id", "recorded_at"])
    return con.execute(
        f"select p.* from {TABLE} p join ducklake_snapshots('{ALIAS}') s on s.snapshot_id = p.snapshot_id "
        "order by p.snapshot_id desc"
    ).df()


def find(con: duckdb.DuckDBPyConnection, run: str | None = None, at: str | pd.Timestamp | None = None) -> int | None:
    """The snapshot of run ``run`` (a run id, or its first characters), or of the last run point
    recorded at or before ``at``, or of the latest run point; None when there is none."""
    points = run_points(con)
    if run is not None:
        points = points[points["run_id"].str.startswith(run)]
        if points.empty:
            raise LookupError(f"no run point for run {run!r} (ops.run_points lists the runs kept)")
    if at is not None:
        points = points[points["recorded_at"] <= pd.Timestamp(at)]
        if points.empty:
            raise LookupError(f"no run point at or before {at} (ops.run_points lists the runs kept)")
    return None if points.empty else int(points["snapshot_id"].iloc[0])


def kept(points: pd.DataFrame, keep_daily: int, keep_weekly: int) -> set[int]:
    """Snapshots of the run points retention keeps: the last of each of the last ``keep_daily`` days
    and the last of each of the last ``keep_weekly`` ISO weeks (days and weeks that have a run point)."""
    if points.empty:
        return set()
    p = points.sort_values("snapshot_id")
    day = pd.to_datetime(p["recorded_at"]).dt.normalize()
    week = pd.to_datetime(p["recorded_at"]).dt.to_period("W-SUN")
    daily = p.groupby(day)["snapshot_id"].max().sort_index().tail(keep_daily)
    weekly = p.groupby(week)["snapshot_id"].max().sort_index().tail(keep_weekly) if keep_weekly else []
    return {int(s) for s in daily} | {int(s) for s in weekly}


def expire(con: duckdb.DuckDBPyConnection, keep_daily: int, keep_weekly: int) -> list[int]:
    """Expire every snapshot but the kept run points' and the latest one; returns the expired ids."""
    keep = kept(run_points(con), keep_daily, keep_weekly) | {current_snapshot(con)}
    every = [int(s) for (s,) in con.execute(f"select snapshot_id from ducklake_snapshots('{ALIAS}')").fetchall()]
    doomed = [s for s in every if s not in keep and s < max(keep)]
    if doomed:
        con.execute(f"call ducklake_expire_snapshots('{ALIAS}', versions => ?)", [doomed])
        con.execute(f"delete from {TABLE} where snapshot_id in (select unnest(?))", [doomed])
    return doomed


def clean_files(con: duckdb.DuckDBPyConnection, grace: str = FILE_GRACE) -> int:
    """Delete data files that expired snapshots alone read, ``grace`` after they were dropped, and files
    no snapshot ever committed (a killed run's); returns how many files went."""
    old = con.execute(f"call ducklake_cleanup_old_files('{ALIAS}', older_than => now() - interval '{grace}')")
    removed = len(old.fetchall())
    orphans = con.execute(f"call ducklake_delete_orphaned_files('{ALIAS}', older_than => now() - interval '{grace}')")
    return removed + len(orphans.fetchall())
