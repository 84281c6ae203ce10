"""Backups of the warehouse: restore points copied to another folder, and restores from them.

A restore point is a folder ``<backup_dir>/<stamp>-s<snapshot>/`` holding a consistent copy of the
SQLite catalog (SQLite's online backup: no writer is stopped) and every data file the lake had,
under ``files/``, plus ``point.json`` (snapshot, latest run point, when). DuckLake never changes a
data file once written, so a file already in the previous point is hard-linked, not copied: a daily
point costs the files that run wrote, and deleting a point frees the files no other point links.
A point is written under a temporary name and renamed when complete; a half-made backup is never
listed. :func:`restore` puts a point back (the catalog it replaces is kept beside it).

A team's PostgreSQL catalog is backed up with PostgreSQL's own tools (``pg_dump``) and its data
path with the object store's versioning; docs/warehouse.md says how. Here: the embedded catalog.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from dagster_pmx import run_points
from dagster_pmx.lake import Lake, copy_catalog, current_snapshot

POINT_FILE = "point.json"
CATALOG_FILE = "catalog.ducklake"


def _local(lake: Lake) -> tuple[Path, Path]:
    if lake.sqlite_file is None or "://" in lake.data_path:
        raise ValueError(
            "pmx backup copies a SQLite catalog and a local data folder; back up a PostgreSQL catalog with "
            "pg_dump and its data path with the storage's own versioning (docs/warehouse.md, 'A team')"
        )
    return lake.sqlite_file, Path(lake.data_path)


def points(backup_dir: str | Path) -> pd.DataFrame:
    """The complete restore points in ``backup_dir``, newest first (name, folder, snapshot_id, run_id, created_at)."""
    rows = []
    for folder in sorted(Path(backup_dir).glob("*/" + POINT_FILE)):
        meta = json.loads(folder.read_text())
        rows.append({"name": folder.parent.name, "folder": str(folder.parent), **meta})
    frame = pd.DataFrame(rows, columns=["name", "folder", "snapshot_id", "run_id", "created_at", "files", "bytes"])
    return frame.sort_values("created_at", ascending=False, ignore_index=True)


def backup(lake: Lake, backup_dir: str | Path) -> Path:
    """Copy the lake to a new restore point in ``backup_dir``; returns the point's folder."""
    catalog, data = _local(lake)
    if not lake.exists():
        raise FileNotFoundError(f"no warehouse at {catalog} to back up")
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    with lake.open(read_only=True) as con:
        snapshot = current_snapshot(con)
        latest = run_points.run_points(con)
    run_id = None if latest.empty else str(latest["run_id"].iloc[0])
    previous = points(backup_dir)
    link_from = Path(previous["folder"].iloc[0]) / "files" if len(previous) else None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    work = backup_dir / f".partial-{stamp}"
    (work / "files").mkdir(parents=True)
    # the catalog first: every file it names was written before it, so the walk below finds them all
    copy_catalog(catalog, work / CATALOG_FILE)
    copied = size = 0
    for file in sorted(p for p in data.rglob("*") if p.is_file()):
        relative = file.relative_to(data)
        target = work / "files" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        earlier = link_from / relative if link_from else None
        if earlier is not None and earlier.is_file() and earlier.stat().st_size == file.stat().st_size:
            os.link(earlier, target)  # DuckLake never rewrites a data file: the earlier copy is this one
        else:
            shutil.copy2(file, target)
            copied += 1
        size += file.stat().st_size
    meta = {
        "snapshot_id": snapshot,
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(),
        "files": copied,
        "bytes": size,
        "data_path": str(data),
    }
    (work / POINT_FILE).write_text(json.dumps(meta, indent=2))
    point = backup_dir / f"{stamp}-s{snapshot}"
    work.rename(point)
    return point


def restore(lake: Lake, point: str | Path, backup_dir: str | Path | None = None) -> Path:
    """Put restore point ``point`` (a folder, or a point's name in ``backup_dir``) back as the lake.

    No run may write meanwhile (stop the UI and the daemon). The catalog it replaces, if any, is kept
    as ``<catalog>.replaced-<stamp>``; data files are copied back where missing or damaged, and none is
    deleted. Returns the catalog file.
    """
    catalog, data = _local(lake)
    folder = Path(point)
    if not (folder / POINT_FILE).is_file() and backup_dir is not None:
        folder = Path(backup_dir) / str(point)
    if not (folder / POINT_FILE).is_file():
        raise FileNotFoundError(f"no restore point at {folder} (`pmx backup --list` lists them)")
    data.mkdir(parents=True, exist_ok=True)
    for file in sorted(p for p in (folder / "files").rglob("*") if p.is_file()):
        target = data / file.relative_to(folder / "files")
        if not target.is_file() or target.stat().st_size != file.stat().st_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)
    catalog.parent.mkdir(parents=True, exist_ok=True)
    if catalog.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        catalog.rename(catalog.with_name(f"{catalog.name}.replaced-{stamp}"))
    for journal in (catalog.with_name(catalog.name + "-wal"), catalog.with_name(catalog.name + "-shm")):
        journal.unlink(missing_ok=True)  # the replaced catalog's log: it must not be replayed onto the point
    copy_catalog(folder / CATALOG_FILE, catalog)
    return catalog


def prune(backup_dir: str | Path, keep_daily: int, keep_weekly: int) -> list[str]:
    """Delete the restore points retention does not keep (the last of each of the last ``keep_daily``
    days and ``keep_weekly`` ISO weeks); returns their names."""
    found = points(backup_dir)
    if found.empty:
        return []
    as_run_points = found.assign(
        recorded_at=pd.to_datetime(found["created_at"]).dt.tz_convert(None),
        snapshot_id=range(len(found), 0, -1),  # newest first: a larger number is a later point
    )
    keep = run_points.kept(as_run_points, keep_daily, keep_weekly)
    doomed = as_run_points[~as_run_points["snapshot_id"].isin(keep)]
    for folder in doomed["folder"]:
        shutil.rmtree(folder)
    return doomed["name"].tolist()
