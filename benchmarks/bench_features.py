"""Feature and target build speed on a synthetic Qlib-sized universe.

Generates 800 tickers x 14 years of daily OHLCV (geometric random walks, seeded) plus a
market index, loads them into a scratch warehouse's ``raw.prices`` and times, with dbt:

1. a Qlib-comparable subset: staging, the session calendar, returns and the trend and
   volatility families (25 features, a superset of 14 Alpha158-style ones: RET1 ~ ret_1d,
   ROC5/ROC20 ~ ret_5d/ret_21d, MA20 and STD20 ~ bollinger_position, MAX/MIN ~
   dist_52w_high/low, volatility ~ realized_vol_10/21/63, ...);
2. the full feature library and the targets (``+features +targets``).

Prints wall time (dbt start-up included), the models' own run time from dbt's
run_results.json, rows per second and peak memory of the dbt process. Qlib's published
figures for 14 features on 800 stocks 2007–2020: 147 s uncached, 7.4 s with its caches.

Usage: ``python benchmarks/bench_features.py [--tickers 800] [--years 14]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DBT_DIR = ROOT / "dbt_project"
DBT = str(Path(sys.executable).with_name("dbt"))
QLIB_UNCACHED_S, QLIB_CACHED_S = 147.0, 7.4


def synthetic_universe(n_tickers: int, years: int, seed: int = 7) -> pd.DataFrame:
    """Seeded OHLCV: log-normal closes, opens near the previous close, highs/lows around both."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2007-01-01", periods=252 * years)
    n = len(dates)
    frames = []
    for i in range(n_tickers + 1):
        ticker = "SP500" if i == n_tickers else f"T{i:04d}"
        vol = rng.uniform(0.01, 0.03)
        r = rng.normal(0.0003, vol, n)
        close = 50 * np.exp(np.cumsum(r))
        open_ = close * np.exp(rng.normal(0, vol / 3, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, vol / 2, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, vol / 2, n)))
        volume = rng.lognormal(13, 0.5, n).round()
        frames.append(
            pd.DataFrame(
                {
                    "ticker": ticker,
                    "date": dates,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "adj_close": close,
                    "volume": volume,
                    "source": "csv",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def load(path: Path, frame: pd.DataFrame) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists raw")
        con.register("frame", frame)
        con.execute("create or replace table raw.prices as select * from frame")
        con.execute(
            "create or replace table raw.macro "
            "(series_id varchar, date date, value double, unit varchar, source varchar)"
        )


def dbt_run(select: str, path: Path) -> dict:
    env = {**os.environ, "PMX_WAREHOUSE": str(path), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    target = Path(tempfile.mkdtemp(prefix="pmx-bench-target-"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(
        [
            DBT,
            "run",
            "--quiet",
            "--select",
            select,
            "--project-dir",
            str(DBT_DIR),
            "--profiles-dir",
            str(DBT_DIR),
            "--target-path",
            str(target),
        ],
        env=env,
        check=True,
        cwd=DBT_DIR,
    )
    wall = time.perf_counter() - started
    peak_kb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {
        "wall_s": wall,
        "models_s": sum(r["execution_time"] for r in results),
        "models": len(results),
        "peak_mib": peak_kb / 1024,
        "per_model": {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickers", type=int, default=800)
    parser.add_argument("--years", type=int, default=14)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        t0 = time.perf_counter()
        frame = synthetic_universe(args.tickers, args.years)
        load(path, frame)
        rows = len(frame)
        print(
            f"synthetic universe: {args.tickers} tickers + index x {args.years} years = {rows:,} rows "
            f"(generated and loaded in {time.perf_counter() - t0:.1f} s); {os.cpu_count()} cores"
        )
        runs = {
            "qlib-comparable subset (trend + volatility, 25 features)": (
                "stg_prices int_sessions int_returns int_features_trend int_features_volatility",
                QLIB_CACHED_S,
            ),
            "full feature library + targets": ("+features +targets", QLIB_UNCACHED_S),
        }
        for label, (select, qlib) in runs.items():
            result = dbt_run(select, path)
            print(f"\n{label}: {result['models']} models")
            print(
                f"  wall time (dbt start-up included) {result['wall_s']:8.2f} s   -> Qlib reference {qlib:.1f} s, "
                f"ratio {result['wall_s'] / qlib:.3f}"
            )
            print(
                f"  models' own run time               {result['models_s']:8.2f} s   "
                f"({rows / result['models_s']:,.0f} rows/s)"
            )
            print(f"  peak memory of the dbt process     {result['peak_mib']:8.0f} MiB")
            slowest = sorted(result["per_model"].items(), key=lambda kv: -kv[1])[:5]
            print("  slowest models: " + ", ".join(f"{k} {v:.2f} s" for k, v in slowest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
