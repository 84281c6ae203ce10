"""Memory of the pooled XGBoost's walk-forward, the part of the forecasting step that runs in the run's
own process, on a warehouse ``bench_scale.py --keep`` left.

Usage::

    python benchmarks/pooled_memory.py --kept DIR --tickers 500 [--start 2005-01-01] [--out rows.parquet]

Reads the returns and the ``marts.features`` rows of the n-ticker run (``DIR/local_<n>/pmx.ducklake``,
read-only) as the forecasting step reads them (features by date and ticker), then walks the default
``PooledXgboost`` forward from ``--start`` with the default window and horizons, XGBoost on 2
threads. Prints the read's size, the walk-forward's seconds and this process's RSS before it, its
peak while it ran (``bench_scale.py``'s sampler, every 0.2 s) and ``ru_maxrss`` (the whole process,
the read included).
``--out`` writes the forecasts, to compare two versions of the code row for row.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_scale import MIB, Sampler  # noqa: E402  (this folder is on sys.path when a script runs)

import dagster_pmx  # noqa: E402
from python_models.evaluation.panel import run_panel  # noqa: E402
from python_models.evaluation.walk_forward import WalkForwardConfig  # noqa: E402
from python_models.forecasters.boosting import PooledXgboost  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kept", required=True, type=Path, help="a folder bench_scale.py --keep wrote")
    parser.add_argument("--tickers", required=True, type=int, help="the run's universe size (local_<n>)")
    parser.add_argument("--start", default="2005-01-01", help="first forecast origin (default: the build's)")
    parser.add_argument("--out", type=Path, help="write the forecasts here (Parquet)")
    args = parser.parse_args()

    con = dagster_pmx.connect(str(args.kept / f"local_{args.tickers}" / "pmx.ducklake"))
    returns = con.execute(
        "select ticker, date, log_return from intermediate.int_returns "
        "where log_return is not null and ticker <> 'SP500' order by ticker, date"
    ).df()
    features = con.execute(
        "select * exclude (refreshed_at) from marts.features where ticker <> 'SP500' order by date, ticker"
    ).df()
    con.close()
    print(
        f"read: {returns['ticker'].nunique()} tickers, returns {returns.memory_usage(deep=True).sum() / MIB:.0f} MiB, "
        f"features {features.memory_usage(deep=True).sum() / MIB:.0f} MiB {features.shape}",
        flush=True,
    )
    sampler = Sampler(extra=[])
    sampler.sample()
    before = sampler.samples[-1][1]
    sampler.start()
    model = PooledXgboost()
    model.n_jobs = 2
    started, began = time.perf_counter(), time.time()
    run = run_panel([model], returns, WalkForwardConfig(), start=args.start, features=features, allow_empty=True)
    seconds = time.perf_counter() - started
    sampler.stop()
    peak = sampler.peak(began, time.time())
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"pooled xgboost: {seconds:.1f} s, {len(run.forecasts):,} rows; RSS before {before:.0f} MiB, "
        f"peak {peak:.0f} MiB (+{peak - before:.0f}); ru_maxrss {maxrss:.0f} MiB",
        flush=True,
    )
    if args.out:
        pd.DataFrame(run.forecasts).to_parquet(args.out)


if __name__ == "__main__":
    main()
