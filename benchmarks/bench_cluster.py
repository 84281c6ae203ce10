"""The walk-forward's fan-out on Dask against a plain process pool, on the same tasks.

The peer is what pmx ran before Dask: ``multiprocessing.Pool(workers)`` (spawned processes,
``imap`` with one task at a time), each task one (model, ticker) walk-forward of the default
single-series models. The Dask side is :func:`python_models.evaluation.cluster.fan_out` with a
local cluster of as many worker processes, started and stopped in each timing, as a build does.
Both run the default settings (756-session window, refit every 63 sessions, forecasts from 2005)
on the first ``--tickers`` bundled stocks, alternately, ``--repeat`` times each; the script checks
that both give the same rows, and prints each time, the medians and their ratio.

Usage: ``python benchmarks/bench_cluster.py [--tickers 4] [--workers 2] [--repeat 2]``
(``make bench-cluster``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_models import default_returns  # noqa: E402  (this folder is on sys.path when a script runs)

from python_models.evaluation.cluster import fan_out  # noqa: E402
from python_models.evaluation.panel import _one  # noqa: E402
from python_models.evaluation.walk_forward import WalkForwardConfig  # noqa: E402
from python_models.forecasters.registry import DEFAULT_MODELS, SERIES_MODELS  # noqa: E402


def tasks(tickers: int) -> list[tuple]:
    config = WalkForwardConfig()
    series = dict(list(default_returns().items())[:tickers])
    names = [name for name in DEFAULT_MODELS if name in SERIES_MODELS]
    return [(SERIES_MODELS[name](), ticker, r, config, "2005-01-01") for ticker, r in series.items() for name in names]


def on_pool(work: list[tuple], workers: int) -> list:
    with mp.get_context("spawn").Pool(workers) as pool:
        return list(pool.imap(_one, work, chunksize=1))


def on_dask(work: list[tuple], workers: int) -> list:
    names = [f"walk-forward-{task[0].name}-{task[1]}" for task in work]
    return fan_out(_one, work, names, workers=workers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickers", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    work = tasks(args.tickers)
    print(
        f"{len(work)} walk-forward tasks ({args.tickers} tickers x the default single-series models), "
        f"{args.workers} workers"
    )
    times: dict[str, list[float]] = {"pool": [], "dask": []}
    rows: dict[str, pd.DataFrame] = {}
    for _ in range(args.repeat):
        for name, run in (("pool", on_pool), ("dask", on_dask)):
            started = time.perf_counter()
            results = run(work, args.workers)
            times[name].append(time.perf_counter() - started)
            rows[name] = pd.concat([r.frame for r in results], ignore_index=True)
            print(f"{name:<5} {times[name][-1]:8.2f} s", flush=True)
    pd.testing.assert_frame_equal(rows["pool"], rows["dask"])
    pool, dask = statistics.median(times["pool"]), statistics.median(times["dask"])
    print(f"median: pool {pool:.2f} s, Dask {dask:.2f} s; Dask / pool = {dask / pool:.2f} (the same rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
