"""What a pmx lake holds on disk, table by table: data files, MB, rows, bytes per row, and per ticker.

Usage: ``python benchmarks/lake_bytes.py [LAKE] [--top N]`` (default: the configured warehouse; LAKE is
its catalog file, e.g. ``warehouse/pmx.ducklake``). Reads the catalog only (DuckLake's
``ducklake_data_file``), so it takes well under a second however large the lake; counts the live data
files of the latest snapshot (files of expired or older snapshots that the upkeep has not deleted yet
are left out) and a SQLite catalog's file. Views (``marts.forecasts``, the staging models) hold no bytes.

``--codecs``: the largest tables (``--top``) also written out once with snappy and once with zstd
(DuckDB's ``COPY`` to Parquet in ``TMPDIR``, deleted after), with each file's size and write time: what
the lake's ``parquet_compression`` setting saves, and costs, on this lake's own data.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import duckdb  # noqa: E402

from dagster_pmx.lake import ALIAS, Lake  # noqa: E402

METADATA = f"__ducklake_metadata_{ALIAS}"


def live_files(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, int, int]]:
    """``(schema.table, data files, bytes, rows)`` of every table of the lake's latest snapshot, largest first,
    from the catalog's own tables (DuckLake shows them as the database ``__ducklake_metadata_<alias>``)."""
    return con.execute(
        f"""
        select s.schema_name || '.' || t.table_name, count(*), sum(f.file_size_bytes), sum(f.record_count)
        from {METADATA}.ducklake_data_file f
        join {METADATA}.ducklake_table t using (table_id)
        join {METADATA}.ducklake_schema s on s.schema_id = t.schema_id
        where f.end_snapshot is null and t.end_snapshot is null and s.end_snapshot is null
        group by all
        order by 3 desc
        """
    ).fetchall()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lake", nargs="?", default=None, help="the catalog file (default: the configured warehouse)")
    parser.add_argument("--top", type=int, default=12, help="tables listed (the rest summed)")
    parser.add_argument("--codecs", action="store_true", help="write the --top tables with snappy and with zstd")
    args = parser.parse_args()
    if args.lake:
        lake = Lake.at(args.lake)
    else:
        from dagster_pmx.config import load_config

        lake = load_config().lake
    if not lake.exists():
        raise SystemExit(f"no lake at {args.lake or 'the configured warehouse'}")
    with lake.open(read_only=True) as con:
        tables = live_files(con)
        tickers = con.execute("select count(distinct ticker) from marts.prices").fetchone()[0]
        codecs = codec_sizes(con, [name for name, *_ in tables[: args.top]]) if args.codecs else []
    file = lake.sqlite_file  # a PostgreSQL catalog's bytes are the server's: left out
    catalog = sum(p.stat().st_size for p in file.parent.glob(file.name + "*") if p.is_file()) if file else 0
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
    if codecs:
        print(f"\n{'table':<45}{'snappy MB':>10}{'s':>7}{'zstd MB':>9}{'s':>7}{'zstd/snappy':>13}")
        for name, (snappy_mb, snappy_s), (zstd_mb, zstd_s) in codecs:
            print(
                f"{name:<45}{snappy_mb:>10.1f}{snappy_s:>7.2f}{zstd_mb:>9.1f}{zstd_s:>7.2f}{zstd_mb / snappy_mb:>13.2f}"
            )
    return 0


def codec_sizes(con: duckdb.DuckDBPyConnection, names: list[str]) -> list[tuple[str, tuple[float, float], ...]]:
    """Per table: (MB, seconds) of a Parquet copy written with snappy, then with zstd."""
    out = []
    with tempfile.TemporaryDirectory(prefix="lake_bytes_") as tmp:
        for name in names:
            written = []
            for codec in ("snappy", "zstd"):
                path = Path(tmp) / f"{name}.{codec}.parquet"
                started = time.perf_counter()
                con.execute(f"copy (select * from {name}) to '{path}' (format parquet, compression {codec})")
                written.append((path.stat().st_size / 1e6, time.perf_counter() - started))
                path.unlink()
            out.append((name, *written))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
