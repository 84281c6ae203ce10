"""What reading ``marts.forecasts`` costs now that it is a view, against a stored copy of the same rows.

Usage: ``python benchmarks/forecasts_view.py [LAKE] [--repeat 3]`` (default: the configured warehouse).

The lake's view is read as analysts and pmx's own steps read it; the copy is ``create table … as select *
from marts.forecasts`` in a DuckDB file of its own (in ``TMPDIR``, deleted after; the table
``marts.forecasts`` was before 0.4.0, though there stored in the lake's Parquet files). Each query runs
``--repeat`` times on each and the fastest time is printed: a full scan, a batch of 20 tickers' realised
rows (what validation and the scores read a batch at a time), the last 120 days (a refresh's tests:
the newest origin written in as a date, as they compile it, and as a scalar subquery), the newest
origin and the key-uniqueness test over every row (a full build's).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster_pmx.lake import Lake  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lake", nargs="?", default=None, help="the catalog file (default: the configured warehouse)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.lake:
        lake = Lake.at(args.lake)
    else:
        from dagster_pmx.config import load_config

        lake = load_config().lake
    with tempfile.TemporaryDirectory(prefix="forecasts_view_") as tmp, lake.open(read_only=True) as con:
        kind = con.execute(
            "select table_type from information_schema.tables where table_catalog = 'pmx' "
            "and table_schema = 'marts' and table_name = 'forecasts'"
        ).fetchone()
        if kind is None or kind[0] != "VIEW":
            raise SystemExit("marts.forecasts is not a view in this lake (built before 0.4.0?)")
        con.execute(f"attach '{Path(tmp) / 'copy.duckdb'}' as copy")
        started = time.perf_counter()
        con.execute("create table copy.forecasts as select * from pmx.marts.forecasts")
        rows = con.execute("select count(*) from copy.forecasts").fetchone()[0]
        print(f"{rows:,} rows of marts.forecasts copied in {time.perf_counter() - started:.1f} s")
        tickers = [
            t
            for (t,) in con.execute("select distinct ticker from pmx.ml.base_forecasts order by 1 limit 20").fetchall()
        ]
        batch = ", ".join(f"'{t}'" for t in tickers)
        newest = con.execute("select max(asof_date)::date from pmx.ml.base_forecasts").fetchone()[0]
        queries = {
            "full scan (count, sums)": "select count(*), sum(y_pred), sum(y_true) from {rel}",
            "20 tickers' realised rows": f"select model, ticker, asof_date, horizon, y_pred, y_true from {{rel}} "
            f"where ticker in ({batch}) and y_true is not null",
            "last 120 days (a refresh's tests)": f"select * from {{rel}} "
            f"where asof_date >= date '{newest}' - interval 120 day",
            "last 120 days, the date a subquery": "select * from {rel} "
            "where asof_date >= (select max(asof_date) from {rel}) - interval 120 day",
            "newest origin": "select max(asof_date) from {rel}",
            "key uniqueness, every row": "select model, ticker, asof_date, horizon from {rel} "
            "group by all having count(*) > 1",
        }
        print(f"\n{'query':<36}{'view, s':>9}{'stored, s':>11}{'ratio':>7}")
        for name, sql in queries.items():
            best = {}
            for label, rel in (("view", "pmx.marts.forecasts"), ("stored", "copy.forecasts")):
                times = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    con.execute(sql.format(rel=rel)).to_arrow_table()
                    times.append(time.perf_counter() - started)
                best[label] = min(times)
            print(f"{name:<36}{best['view']:>9.3f}{best['stored']:>11.3f}{best['view'] / best['stored']:>7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
