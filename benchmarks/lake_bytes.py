"""What a pmx lake holds on disk, table by table: data files, MB, rows, bytes per row, and per ticker.

Usage: ``python benchmarks/lake_bytes.py [LAKE] [--top N]`` (default: the configured warehouse; LAKE is
its catalog file, e.g. ``warehouse/pmx.ducklake``). Reads the catalog only (DuckLake's
``ducklake_data_file``), so it takes well under a second however large the lake; counts the live data
files of the latest snapshot (files of expired or older snapshots that the upkeep has not deleted yet
are left out) and the catalog file. Views (``marts.forecasts``, the staging models) hold no bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402

from dagster_pmx.lake import Lake  # noqa: E402


def live_files(lake: Lake) -> list[tuple[str, int, int, int]]:
    """``(schema.table, data files, bytes, rows)`` of every table of the lake's latest snapshot, largest first."""
    if lake.sqlite_file is None:
        raise SystemExit(
            "lake_bytes.py reads a SQLite catalog (the default); a PostgreSQL one: query its ducklake_data_file"
        )
    con = duckdb.connect()
    con.execute("install sqlite")
    con.execute(f"attach '{lake.sqlite_file}' as catalog (type sqlite, read_only)")
    return con.execute(
        """
        select s.schema_name || '.' || t.table_name, count(*), sum(f.file_size_bytes), sum(f.record_count)
        from catalog.ducklake_data_file f
        join catalog.ducklake_table t using (table_id)
        join catalog.ducklake_schema s on s.schema_id = t.schema_id
        where f.end_snapshot is null and t.end_snapshot is null and s.end_snapshot is null
        group by all
        order by 3 desc
        """
    ).fetchall()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lake", nargs="?", default=None, help="the catalog file (default: the configured warehouse)")
    parser.add_argument("--top", type=int, default=12, help="tables listed (the rest summed)")
    args = parser.parse_args()
    if args.lake:
        lake = Lake.at(args.lake)
    else:
        from dagster_pmx.config import load_config

        lake = load_config().lake
    if not lake.exists():
        raise SystemExit(f"no lake at {args.lake or 'the configured warehouse'}")
    tables = live_files(lake)
    with lake.open(read_only=True) as con:
        tickers = con.execute("select count(distinct ticker) from marts.prices").fetchone()[0]
    catalog = sum(p.stat().st_size for p in lake.sqlite_file.parent.glob(lake.sqlite_file.name + "*") if p.is_file())
    data = sum(size for _, _, size, _ in tables)
    print(f"{'table':<45}{'files':>7}{'MB':>9}{'rows':>13}{'bytes/row':>11}{'share':>8}")
    for name, files, size, rows in tables[: args.top]:
        print(f"{name:<45}{files:>7}{size / 1e6:>9.1f}{rows:>13,}{size / max(rows, 1):>11.1f}{size / data:>8.1%}")
    rest = tables[args.top :]
    if rest:
        size = sum(t[2] for t in rest)
        label = f"the other {len(rest)} tables"
        print(f"{label:<45}{sum(t[1] for t in rest):>7}{size / 1e6:>9.1f}{'':>24}{size / data:>8.1%}")
    total = data + catalog
    print(
        f"\ndata files {data / 1e6:.1f} MB + catalog {catalog / 1e6:.2f} MB = {total / 1e6:.1f} MB; "
        f"{tickers} tickers in marts.prices (the benchmark's index included): "
        f"{total / 1e6 / max(tickers, 1):.1f} MB per ticker"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
