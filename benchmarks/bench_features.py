"""Feature and target build speed on a synthetic Qlib-sized universe, full and incremental.

Generates 800 tickers x 14 years of daily OHLCV (geometric random walks, seeded) plus a
market index, loads all but the last two sessions into a scratch warehouse's ``raw.prices``
and times, with dbt (after an untimed ``dbt parse``, so every run starts the same way):

1. a Qlib-comparable set of 14 features (``QLIB_SET``: Alpha158-style ROC, Ref, MA/STD,
   MAX/MIN and a moving-average crossover), rebuilt from scratch with staging, the
   session calendar and returns (median of three); then the same with the volatility
   family added (25 features);
2. the full feature library and the targets (``+features +targets``), rebuilt from scratch;
3. the daily refresh, twice: one held-out session is appended for every ticker and the
   same models run incrementally (one dbt thread, then two). Wall time over the full
   rebuild's is the refresh ratio.

Prints wall time (dbt start-up included), the models' own run time from dbt's
run_results.json, rows per second and peak memory of each dbt process. Qlib's published
figures for 14 features on 800 stocks 2007–2020: 147 s uncached, 7.4 s with its caches.

Usage: ``python benchmarks/bench_features.py [--tickers 800] [--years 14]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dagster_pmx.defs.transform.project import ensure_packages
from dagster_pmx.lake import Lake

ROOT = Path(__file__).resolve().parent.parent
DBT_DIR = ROOT / "dbt_project"
DBT = str(Path(sys.executable).with_name("dbt"))
QLIB_UNCACHED_S, QLIB_CACHED_S = 147.0, 7.4
# Alpha158-style operators: ROC (ret_*), Ref (ret_lag_*), MA and STD (bollinger_position),
# MAX and MIN (dist_52w_*), and a moving-average crossover (trend_regime).
QLIB_SET = [
    "ret_1d",
    "ret_5d",
    "ret_21d",
    "ret_63d",
    "ret_126d",
    "ret_252d",
    "momentum_1_20",
    "bollinger_position",
    "dist_52w_high",
    "dist_52w_low",
    "trend_regime",
    "ret_lag_1",
    "ret_lag_2",
    "ret_lag_3",
]
QLIB_SET_MODELS = "stg_prices stg_price_loads int_sessions int_returns int_features_trend"


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


def load(path: Path, frame: pd.DataFrame, ingested_at: str) -> None:
    with Lake.at(path).open() as con:
        con.execute("create schema if not exists raw")
        con.register("frame", frame)
        con.execute(
            "create table if not exists raw.prices as select *, now()::timestamp as ingested_at from frame limit 0"
        )
        con.execute(f"insert into raw.prices select *, timestamp '{ingested_at}' from frame")
        con.execute(
            "create table if not exists raw.macro "
            "(series_id varchar, date date, value double, unit varchar, source varchar, ingested_at timestamp)"
        )


def dbt(command: str, select: str, path: Path, target: Path, *flags: str) -> dict:
    """One dbt invocation; its wall time, the models' own times and the process's peak memory."""
    from dagster_pmx.defs.transform.project import dbt_env

    env = {**os.environ, **dbt_env(Lake.at(path))}
    args = [DBT, command, "--quiet", "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)]
    args += ["--target-path", str(target), *flags] + (["--select", select] if select else [])
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, cwd=DBT_DIR)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"dbt {command} failed")
    if command != "run":
        return {"wall_s": wall}
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {
        "wall_s": wall,
        "models_s": sum(r["execution_time"] for r in results),
        "models": len(results),
        "peak_mib": usage.ru_maxrss / 1024,
        "per_model": {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results},
    }


def report(label: str, result: dict, rows: int, reference: tuple[str, float] | None = None) -> None:
    print(f"\n{label}: {result['models']} models")
    line = f"  wall time (dbt start-up included) {result['wall_s']:8.2f} s"
    if reference:
        line += f"   -> {reference[0]} {reference[1]:.1f} s, ratio {result['wall_s'] / reference[1]:.3f}"
    print(line)
    print(
        f"  models' own run time               {result['models_s']:8.2f} s   ({rows / result['models_s']:,.0f} rows/s)"
    )
    print(f"  peak memory of the dbt process     {result['peak_mib']:8.0f} MiB")
    slowest = sorted(result["per_model"].items(), key=lambda kv: -kv[1])[:5]
    print("  slowest models: " + ", ".join(f"{k} {v:.2f} s" for k, v in slowest))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickers", type=int, default=800)
    parser.add_argument("--years", type=int, default=14)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, target = Path(tmp) / "bench.ducklake", Path(tmp) / "target"
        t0 = time.perf_counter()
        frame = synthetic_universe(args.tickers, args.years)
        held_out = sorted(frame["date"].unique())[-2:]  # appended one at a time by the daily refreshes
        load(path, frame[frame["date"] < held_out[0]], "2026-01-01")
        rows = int((frame["date"] < held_out[0]).sum())
        print(
            f"synthetic universe: {args.tickers} tickers + index x {args.years} years = {rows:,} rows "
            f"(generated and loaded in {time.perf_counter() - t0:.1f} s); {os.cpu_count()} cores"
        )
        ensure_packages()  # the vendored dbt_utils, linked offline (`dbt deps`) on a fresh clone
        dbt("parse", "", path, target)
        # the Qlib-comparable set: int_features_trend computes these 14 and ret_lag_4/5;
        # median of three rebuilds, as dbt's start-up time varies
        runs = [dbt("run", QLIB_SET_MODELS, path, target, "--full-refresh") for _ in range(3)]
        result = sorted(runs, key=lambda r: r["wall_s"])[1]
        report(
            f"qlib-comparable set ({len(QLIB_SET)} trend features), from scratch, median of 3",
            result,
            rows,
            ("Qlib cached", QLIB_CACHED_S),
        )
        print("  features: " + ", ".join(QLIB_SET))
        wider = dbt("run", QLIB_SET_MODELS + " int_features_volatility", path, target, "--full-refresh")
        report(
            "the same plus the volatility family (25 features), from scratch",
            wider,
            rows,
            ("Qlib cached", QLIB_CACHED_S),
        )
        full = dbt("run", "+features +targets", path, target, "--full-refresh")
        report("full feature library + targets, from scratch", full, rows, ("Qlib uncached", QLIB_UNCACHED_S))

        for day, threads in zip(held_out, ("1", "2"), strict=True):
            load(path, frame[frame["date"] == day], f"2026-06-0{threads}")
            refresh = dbt("run", "+features +targets", path, target, "--threads", threads)
            report(
                f"daily refresh, {threads} dbt thread(s): one new session ({day.date()}) "
                f"for all {args.tickers + 1} series",
                refresh,
                args.tickers + 1,
            )
            print(
                f"  refresh / full rebuild: wall {refresh['wall_s'] / full['wall_s']:.3f}, "
                f"models' own time {refresh['models_s'] / full['models_s']:.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
