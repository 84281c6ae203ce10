"""Feature and target build speed on a synthetic Qlib-sized universe, full and incremental, against Qlib.

Generates 800 tickers x 14 years of daily OHLCV (geometric random walks, seeded) plus a
market index, loads all but the last two sessions into a scratch warehouse's ``raw.prices``
and times, with dbt (after an untimed ``dbt parse``, so every run starts the same way):

1. a Qlib-comparable set of 14 features (``QLIB_SET``: Alpha158-style ROC, Ref, MA/STD,
   MAX/MIN and a moving-average crossover), rebuilt from scratch with staging, the
   session calendar and returns (median of three); then the same with the volatility
   family added (25 features);
2. the same 14 features with Qlib's expression engine, in this run and on the same rows:
   ``benchmarks/qlib_features.py``, run as a child process with the Python of a separate
   virtualenv that holds ``pyqlib`` (``--qlib-python``; ``make bench-features`` creates
   ``.venv-qlib``), converts them into Qlib's binary format (set-up, timed on its own), then
   times ``D.features`` with Qlib's expression and dataset caches off, each run a fresh
   process (median of three). Prints pmx / Qlib (the goal: at most 0.5) and checks on a few
   tickers that both compute the same values;
3. the full feature library and the targets (``+features +targets``), rebuilt from scratch;
4. the daily refresh, twice: one held-out session is appended for every ticker and the
   same models run incrementally, one after the other (one dbt thread). Wall time over the full
   rebuild's is the refresh ratio.

Prints wall time (dbt start-up included), the models' own run time from dbt's
run_results.json, rows per second and peak memory of each dbt process. (Qlib's published
figures for 14 features on 800 stocks 2007-2020, 147 s uncached and 7.4 s cached, are from
another machine; the ratio here is against Qlib measured in this run.)

Usage: ``python benchmarks/bench_features.py [--tickers 800] [--years 14] [--qlib-python .venv-qlib/bin/python]
[--duckdb-memory 2GB]``
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
from dagster_pmx.lake import DEFAULT_DUCKDB_MEMORY, Lake

ROOT = Path(__file__).resolve().parent.parent
DBT_DIR = ROOT / "dbt_project"
DBT = str(Path(sys.executable).with_name("dbt"))
QLIB_SCRIPT = ROOT / "benchmarks" / "qlib_features.py"
QLIB_VENV_PYTHON = ROOT / ".venv-qlib" / "bin" / "python"
OHLCV = ["open", "high", "low", "close", "volume"]
# Qlib keeps prices as float32 (its .bin format) and computes in float32 where pandas does: agreement
# with pmx's doubles is to float32 precision, an absolute 1e-5 (returns of ~1e-2) or 1e-5 relative
FLOAT32_ATOL, FLOAT32_RTOL = 1e-5, 1e-5
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


#: dbt's DuckDB memory limit (``--duckdb-memory``; the ``duckdb_memory`` setting's default otherwise).
DUCKDB_MEMORY = [DEFAULT_DUCKDB_MEMORY]


def high_water_kib(pid: int) -> int:
    """The process's peak resident memory so far (``VmHWM``, KiB; 0 once it has gone). Not the
    child's ``ru_maxrss``: Linux carries a process's peak across ``exec``, so a dbt started from this
    process (which holds the synthetic universe) would report at least this process's size."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    except OSError:
        return 0


def dbt(command: str, select: str, path: Path, target: Path, *flags: str) -> dict:
    """One dbt invocation; its wall time, the models' own times and the process's peak memory."""
    from dagster_pmx.defs.transform.project import dbt_env

    env = {**os.environ, **dbt_env(Lake.at(path), DUCKDB_MEMORY[0])}
    args = [DBT, command, "--quiet", "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)]
    args += ["--target-path", str(target), *flags] + (["--select", select] if select else [])
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, cwd=DBT_DIR)
    peak_kib = 0
    while True:  # its high-water mark while it runs (an exited process has none left to read)
        done, status, _ = os.wait4(process.pid, os.WNOHANG)
        if done:
            break
        peak_kib = max(peak_kib, high_water_kib(process.pid))
        time.sleep(0.05)
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
        "peak_mib": peak_kib / 1024,
        "per_model": {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results},
    }


def report(label: str, result: dict, rows: int) -> None:
    print(f"\n{label}: {result['models']} models")
    print(f"  wall time (dbt start-up included) {result['wall_s']:8.2f} s")
    print(
        f"  models' own run time               {result['models_s']:8.2f} s   ({rows / result['models_s']:,.0f} rows/s)"
    )
    print(f"  peak memory of the dbt process     {result['peak_mib']:8.0f} MiB")
    slowest = sorted(result["per_model"].items(), key=lambda kv: -kv[1])[:5]
    print("  slowest models: " + ", ".join(f"{k} {v:.2f} s" for k, v in slowest))


def qlib_child(python: str, log: Path, *args: str) -> dict:
    """One run of qlib_features.py with the Qlib virtualenv's Python: its JSON line (with the process's own
    peak memory) and wall time."""
    started = time.perf_counter()
    with open(log, "w") as err, tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen([python, str(QLIB_SCRIPT), *args], stdout=out, stderr=err, cwd=ROOT)
        status = process.wait()
        wall = time.perf_counter() - started
        out.seek(0)
        lines = out.read().splitlines()
    if status != 0 or not lines:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise RuntimeError(f"qlib_features.py {args[0]} failed:\n{tail}")
    return {**json.loads(lines[-1]), "wall_s": wall}


def run_qlib(python: str, frame: pd.DataFrame, tmp: Path, tickers: list[str], runs: int = 3) -> dict:
    """Qlib on the rows pmx was given: the conversion to its binary format once, then ``runs`` fresh
    processes timing the 14 expressions (the first also writes ``tickers``' values for the check)."""
    universe, qlib_dir, values = tmp / "universe.npz", tmp / "qlib_data", tmp / "qlib_values.npz"
    np.savez(
        universe,
        ticker=frame["ticker"].to_numpy(dtype=str),
        date=frame["date"].to_numpy(dtype="datetime64[ns]"),
        **{field: frame[field].to_numpy(dtype="float64") for field in OHLCV},
    )
    dump = qlib_child(python, tmp / "qlib_dump.log", "dump", str(universe), str(qlib_dir))
    check = ["--values", str(values), "--tickers", ",".join(tickers)]
    timed = [
        qlib_child(python, tmp / f"qlib_features_{i}.log", "features", str(qlib_dir), *(check if i == 0 else []))
        for i in range(runs)
    ]
    median = sorted(timed, key=lambda r: r["features_s"])[len(timed) // 2]
    return {"dump": dump, "runs": timed, "median": median, "values": values}


def check_same_values(path: Path, values: Path, tickers: list[str]) -> bool:
    """Qlib's values against pmx's int_features_trend on ``tickers``, feature by feature: equal (to float32
    precision) wherever pmx has a value; rows where Qlib has a value and pmx NULL are counted apart
    (Qlib's rolling operators use partial windows, min_periods=1, where pmx waits for a full one)."""
    with np.load(values) as npz:
        qlib = pd.DataFrame({name: npz[name] for name in npz.files})
    quoted = ", ".join(f"'{t}'" for t in tickers)
    with Lake.at(path).open(read_only=True) as con:
        pmx = con.execute(
            f"select ticker, date, {', '.join(QLIB_SET)} from intermediate.int_features_trend "
            f"where ticker in ({quoted}) order by ticker, date"
        ).df()
    for frame in (qlib, pmx):
        frame["date"] = frame["date"].astype("datetime64[ns]")
    both = pmx.merge(qlib, on=["ticker", "date"], how="outer", suffixes=("_pmx", "_qlib"), indicator=True)
    print(
        f"  same values? {', '.join(tickers)}: {len(pmx):,} pmx rows, {len(qlib):,} Qlib rows, "
        f"{int((both['_merge'] != 'both').sum())} rows in only one; "
        f"tolerance {FLOAT32_ATOL:g} + {FLOAT32_RTOL:g} x |pmx|"
    )
    same = bool((both["_merge"] == "both").all())
    for name in QLIB_SET:
        p, q = both[f"{name}_pmx"].astype("float64"), both[f"{name}_qlib"].astype("float64")
        has = p.notna()
        diff = (p - q).abs()[has]
        bad = int((q[has].isna() | (diff > FLOAT32_ATOL + FLOAT32_RTOL * p[has].abs())).sum())
        warm_up = int((p.isna() & q.notna()).sum())
        same &= bad == 0
        print(
            f"    {name:<19} {'ok' if bad == 0 else 'DIFFERENT':<9} {int(has.sum()):>7,} compared, max |diff| "
            f"{diff.max() if len(diff) else 0:.2e}, {bad} out of tolerance, "
            f"{warm_up} warm-up rows Qlib fills and pmx leaves NULL"
        )
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickers", type=int, default=800)
    parser.add_argument("--years", type=int, default=14)
    parser.add_argument("--duckdb-memory", default=DEFAULT_DUCKDB_MEMORY, help="dbt's DuckDB memory limit")
    parser.add_argument(
        "--qlib-python",
        default=str(QLIB_VENV_PYTHON) if QLIB_VENV_PYTHON.exists() else "",
        help="Python of a virtualenv with pyqlib (default .venv-qlib/bin/python if there; empty: skip Qlib)",
    )
    args = parser.parse_args()
    DUCKDB_MEMORY[0] = args.duckdb_memory
    with tempfile.TemporaryDirectory() as tmp:
        path, target = Path(tmp) / "bench.ducklake", Path(tmp) / "target"
        t0 = time.perf_counter()
        frame = synthetic_universe(args.tickers, args.years)
        held_out = sorted(frame["date"].unique())[-2:]  # appended one at a time by the daily refreshes
        loaded = frame[frame["date"] < held_out[0]]
        load(path, loaded, "2026-01-01")
        rows = len(loaded)
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
        report(f"qlib-comparable set ({len(QLIB_SET)} trend features), from scratch, median of 3", result, rows)
        print("  features: " + ", ".join(QLIB_SET))
        agree = True
        if args.qlib_python:
            stocks = sorted(set(loaded["ticker"]) - {"SP500"})
            tickers = sorted({*stocks[:2], stocks[-1], "SP500"})  # a few tickers and the index
            qlib = run_qlib(args.qlib_python, loaded, Path(tmp), tickers)
            dump, median = qlib["dump"], qlib["median"]
            print(
                f"\nQlib {median['features']} expressions (pyqlib, {median['kernels']} kernel(s), expression and "
                f"dataset caches {median['expression_cache']} / {median['dataset_cache']}), same rows, median of 3 "
                "fresh processes"
            )
            print(
                f"  set-up, not timed below: conversion to Qlib's binary format {dump['dump_s']:8.2f} s "
                f"({dump['instruments']} instruments x {dump['sessions']} sessions)"
            )
            print(
                f"  D.features, uncached                {median['features_s']:8.2f} s   "
                f"({median['rows'] / median['features_s']:,.0f} rows/s; runs "
                + ", ".join(f"{r['features_s']:.2f}" for r in qlib["runs"])
                + " s)"
            )
            print(
                f"  process wall (import, init included) {median['wall_s']:7.2f} s   "
                f"(qlib.init {median['init_s']:.2f} s), peak memory {median['peak_mib']:.0f} MiB"
            )
            print(
                f"  pmx / Qlib: dbt wall / D.features {result['wall_s'] / median['features_s']:.3f} (goal <= 0.5), "
                f"models' own time / D.features {result['models_s'] / median['features_s']:.3f}, "
                f"dbt wall / Qlib process wall {result['wall_s'] / median['wall_s']:.3f}"
            )
            # D.features starts from Qlib's binary store, each instrument already aligned to the calendar (the
            # conversion above, not timed); pmx's staging, calendar and aligned returns are that step's peers
            features_s = result["per_model"]["int_features_trend"]
            print(
                f"  the features' own model (int_features_trend, {features_s:.2f} s, from the aligned returns) / "
                f"D.features {features_s / median['features_s']:.3f}"
            )
            agree = check_same_values(path, qlib["values"], tickers)
        else:
            print("\nQlib skipped: no --qlib-python (`make bench-features` installs pyqlib into .venv-qlib)")
        wider = dbt("run", QLIB_SET_MODELS + " int_features_volatility", path, target, "--full-refresh")
        report("the same plus the volatility family (25 features), from scratch", wider, rows)
        full = dbt("run", "+features +targets", path, target, "--full-refresh")
        report("full feature library + targets, from scratch", full, rows)

        # one dbt thread, as profiles.yml runs it: a SQLite catalog takes one commit at a time, and two
        # threads committing at once fail with "database is locked"
        for i, day in enumerate(held_out, start=1):
            load(path, frame[frame["date"] == day], f"2026-06-0{i}")
            refresh = dbt("run", "+features +targets", path, target, "--threads", "1")
            report(
                f"daily refresh {i} of {len(held_out)}: one new session ({day.date()}) "
                f"for all {args.tickers + 1} series",
                refresh,
                args.tickers + 1,
            )
            print(
                f"  refresh / full rebuild: wall {refresh['wall_s'] / full['wall_s']:.3f}, "
                f"models' own time {refresh['models_s'] / full['models_s']:.3f}"
            )
    if not agree:
        print("\nQlib's and pmx's values differ (see 'same values?' above)")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
