"""Readers beside runs, and disk use over many refreshes, on the default bundled data.

Usage: ``python benchmarks/bench_warehouse.py [--refreshes 20] [--keep-daily 5] [--built PATH]``
(``make bench-warehouse``).

1. Full build of the default data up to ``refreshes`` sessions before its last one (``--built``
   reuses a warehouse such a run kept with ``--keep``).
2. An analyst's session (``tests/e2e/reader_probe.py``, its own process) reads for 15 s with no run
   going: the idle latency of a query on a held connection and of ``dagster_pmx.connect()`` + query.
3. ``refreshes`` daily refreshes, one session each, each in its own process as the scheduler runs
   them, with the same reader querying every ~0.2 s throughout: latency during runs, and errors.
   Each refresh stands for one day: its run point is dated a day after the previous one, and the
   nightly maintenance runs after it (retention ``--keep-daily`` days, ``--keep-weekly`` weeks; the
   files of expired snapshots are deleted at once, as the next night would).
4. Disk use (catalog + data files) after every refresh, before and after that upkeep; without
   upkeep the lake would keep every byte the upkeep reclaimed (the last column, cumulated).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_refresh import set_up_for, timed  # noqa: E402

from dagster_pmx import run_points  # noqa: E402
from dagster_pmx.lake import Lake  # noqa: E402


def disk(lake: Lake) -> tuple[int, int]:
    """Bytes of the catalog (with its log) and the data files, and the number of data files."""
    catalog = lake.sqlite_file
    assert catalog is not None
    size = sum(p.stat().st_size for p in catalog.parent.glob(catalog.name + "*") if p.is_file())
    files = [p for p in Path(lake.data_path).rglob("*") if p.is_file()]
    return size + sum(p.stat().st_size for p in files), len(files)


def latencies(lines: list[dict], kind: str) -> str:
    seconds = sorted(r["seconds"] for r in lines if r["kind"] == kind and not r["error"])
    if not seconds:
        return "no reads"
    p95 = seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))]
    return (
        f"{len(seconds)} reads, median {statistics.median(seconds) * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms, max {seconds[-1] * 1000:.0f} ms"
    )


def probe(path: str, out: Path, stop: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.reader_probe", path, str(out), str(stop)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--refreshes", type=int, default=20)
    parser.add_argument("--keep-daily", type=int, default=5)
    parser.add_argument("--keep-weekly", type=int, default=0)
    parser.add_argument("--built", default=None, help="warehouse built by an earlier run's step 1")
    parser.add_argument("--keep", default=None, help="keep the step-1 warehouse at this path")
    parser.add_argument("--refresh-only", nargs=2, default=None, help=argparse.SUPPRESS)  # PATH END_DATE
    args = parser.parse_args()
    if args.refresh_only:
        seconds, _, ok = timed("daily_refresh", args.refresh_only[0], end_date=args.refresh_only[1])
        print(json.dumps({"seconds": seconds, "ok": ok}))
        return 0
    from dagster_pmx.defs.ingest.sources import BundledSource

    sessions = [str(d)[:10] for d in sorted(BundledSource().prices()["date"].unique())]
    start = sessions[-(args.refreshes + 1)]
    tmp = tempfile.TemporaryDirectory()
    path = str(Path(tmp.name) / "bench.ducklake")
    set_up_for(path)
    if args.built:
        Lake.at(args.built).copy_to(path)
    else:
        seconds, _, ok = timed("full_build", path, end_date=start)
        print(f"full build to {start}: {seconds:.1f} s", flush=True)
        if not ok:
            return 1
        if args.keep:
            Lake.at(path).copy_to(args.keep)
    lake = Lake.at(path)
    reads, stop = Path(tmp.name) / "reads.jsonl", Path(tmp.name) / "stop"
    reader = probe(path, reads, stop)
    time.sleep(15.0)
    idle = read_lines(reads)
    base = disk(lake)[0]
    print(f"disk after the full build: {base / 1e6:.0f} MB", flush=True)
    print(
        f"{'refresh':>8}{'end date':>12}{'seconds':>9}{'MB before':>10}{'MB after':>9}{'files':>7}{'reclaimed MB':>13}"
    )
    day0, reclaimed = None, 0
    try:
        for i, end in enumerate(sessions[-args.refreshes :], start=1):
            child = subprocess.run(
                [sys.executable, __file__, "--refresh-only", path, end], capture_output=True, text=True, env=os.environ
            )
            if child.returncode != 0:
                print(child.stdout[-3000:], child.stderr[-3000:])
                return 1
            result = json.loads(child.stdout.strip().splitlines()[-1])
            before = disk(lake)[0]
            with lake.open() as con:
                # this refresh stands for day i: its run point is dated so, then the nightly upkeep runs
                points = run_points.run_points(con)
                day0 = day0 or points["recorded_at"].iloc[-1]
                latest = int(points["snapshot_id"].iloc[0])
                con.execute(
                    "update ops.run_points set recorded_at = ?::timestamp + ? * interval '1 day' where snapshot_id = ?",
                    [str(day0), i, latest],
                )
                run_points.expire(con, args.keep_daily, args.keep_weekly)
                run_points.clean_files(con, grace="0 seconds")
            size, files = disk(lake)
            reclaimed += before - size
            print(
                f"{i:>8}{end:>12}{result['seconds']:>9.1f}{before / 1e6:>10.0f}{size / 1e6:>9.0f}{files:>7}"
                f"{reclaimed / 1e6:>13.0f}",
                flush=True,
            )
    finally:
        stop.touch()
        reader.wait(timeout=60)
    during = read_lines(reads)[len(idle) :]
    errors = [r["error"] for r in read_lines(reads) if r["error"] and r["kind"] == "fresh"]
    print(f"errors of connect() + query: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    # the held connection stays on the full build's snapshot; once retention expires it and the upkeep
    # deletes its files (at once here, a day later in production), its reads fail: expected, and counted
    held_errors = [r for r in read_lines(reads) if r["error"] and r["kind"] == "held"]
    print(f"errors of the held connection (its snapshot expired and its files deleted): {len(held_errors)}")
    for kind, what in (("held", "query on a held connection"), ("fresh", "connect() + query")):
        print(f"{what:<28} idle:        {latencies(idle, kind)}")
        print(f"{'':<28} during runs: {latencies(during, kind)}")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
