"""Forecaster speed on the default (bundled) data: refits per second, and batched SSA.

1. For every single-series model in ``python_models.forecasters.registry.SERIES_MODELS``: the
   walk-forward of the default settings (756-session window, refit every 63 sessions or the
   model's own cadence, horizons 1/5/21/63, forecasts from 2005) on the first ``--tickers``
   stocks, in this process with one BLAS thread. Prints refits, seconds (fits and
   forecasts) and refits/s. Then each pooled model (one refit covers every stock) on all
   stocks; XGBoost reads ``marts.features`` from the warehouse ``make run`` built
   (``--warehouse``) and is skipped without one.
2. SSA: the training windows of every refit of every stock, fitted by the batched
   ``fit_windows`` (stacked Page matrices, one eigendecomposition call) and by the naive
   per-window ``numpy.linalg.svd`` loop ``fit_windows_naive``; checks they agree and
   prints the speed-up (target >= 10x on CPU). With CuPy and a CUDA device, also the
   CuPy-vs-NumPy ratio.

Usage: ``python benchmarks/bench_models.py [--tickers 5] [--models garch,samossa]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from dagster_pmx.defs.ingest.sources import BundledSource
from dagster_pmx.lake import Lake
from python_models.evaluation.panel import pooled_panel, run_pooled
from python_models.evaluation.walk_forward import WalkForwardConfig, run_walk_forward, walk_forward_folds
from python_models.forecasters.array_module import gpu_module
from python_models.forecasters.registry import POOLED_MODELS
from python_models.forecasters.registry import SERIES_MODELS as MODELS
from python_models.forecasters.ssa import Samossa, fit_windows, fit_windows_naive, page_matrices


def default_returns() -> dict[str, pd.Series]:
    """Daily log returns of the bundled stocks (benchmark index excluded), by ticker."""
    prices = BundledSource().prices(None)
    prices = prices[(prices["ticker"] != "SP500") & (prices["source"] == "skfolio")]
    out = {}
    for ticker, group in prices.sort_values("date").groupby("ticker"):
        close = group.set_index(pd.DatetimeIndex(group["date"]))["adj_close"].astype(float)
        out[ticker] = np.log(close).diff().dropna()
    return out


def time_models(returns: dict[str, pd.Series], names: list[str], config: WalkForwardConfig) -> None:
    print(f"{'model':<12} {'refits':>7} {'seconds':>9} {'refits/s':>9}   ({len(returns)} tickers, 1 thread)")
    for name in names:
        fits, started = 0, time.perf_counter()
        with threadpool_limits(limits=1):
            for series in returns.values():
                out = run_walk_forward(MODELS[name](), series, config, start="2005-01-01")
                fits += out["train_end"].nunique()
        seconds = time.perf_counter() - started
        print(f"{name:<12} {fits:>7} {seconds:>9.2f} {fits / seconds:>9.1f}")


def time_pooled(returns: dict[str, pd.Series], warehouse: str, config: WalkForwardConfig) -> None:
    long = pd.concat(
        [pd.DataFrame({"ticker": t, "date": s.index, "log_return": s.to_numpy()}) for t, s in returns.items()]
    )
    features = None
    if os.path.exists(warehouse):
        with Lake.at(warehouse).open(read_only=True) as con:
            features = con.execute("select * exclude (refreshed_at) from marts.features where ticker <> 'SP500'").df()
    print(
        f"\n{'pooled':<12} {'refits':>7} {'seconds':>9} {'refits/s':>9}   ({len(returns)} tickers per refit, 1 thread)"
    )
    for name, factory in POOLED_MODELS.items():
        model = factory()
        if model.needs_features and features is None:
            print(f"{name:<12} skipped: no warehouse at {warehouse} (run `make run` first)")
            continue
        panel = pooled_panel(long, features if model.needs_features else None)
        started = time.perf_counter()
        with threadpool_limits(limits=1):
            out, _ = run_pooled(model, panel, config, start="2005-01-01")
        seconds = time.perf_counter() - started
        fits = out["train_end"].nunique()
        print(f"{name:<12} {fits:>7} {seconds:>9.2f} {fits / seconds:>9.2f}")


def ssa_windows(returns: dict[str, pd.Series], config: WalkForwardConfig) -> np.ndarray:
    """Levels of every training window of every refit (windows x (train_window + 1))."""
    windows = []
    for series in returns.values():
        r = series.to_numpy()
        first = int(series.index.searchsorted(pd.Timestamp("2005-01-01")))
        for fold in walk_forward_folds(len(r), first, config):
            windows.append(np.concatenate([[0.0], np.cumsum(r[fold.train_start : fold.train_end])]))
    return np.stack(windows)


def time_ssa(levels: np.ndarray, rows: int) -> None:
    print(f"\nSSA fits: {levels.shape[0]} windows of {levels.shape[1]} levels (all refits, all stocks), L = {rows}")
    with threadpool_limits(limits=1):
        started = time.perf_counter()
        naive = fit_windows_naive(levels, rows)
        t_naive = time.perf_counter() - started
        started = time.perf_counter()
        batched = fit_windows(levels, rows)
        t_batched = time.perf_counter() - started
    worst = max(float(np.max(np.abs(getattr(batched, k) - getattr(naive, k)))) for k in ("beta", "phi", "error_var"))
    print(f"  naive per-window numpy.linalg.svd loop  {t_naive:8.3f} s")
    print(f"  batched (stacked Page matrices, NumPy)  {t_batched:8.3f} s   speed-up {t_naive / t_batched:6.1f}x")
    print(f"  largest difference in beta/phi/error variance: {worst:.2e}")
    # the decomposition alone: per-window SVD of each Page matrix vs one batched eigh of their Gram matrices
    pages = page_matrices(levels - levels.mean(axis=1, keepdims=True), rows)
    with threadpool_limits(limits=1):
        started = time.perf_counter()
        for page in pages:
            np.linalg.svd(page)
        t_svd = time.perf_counter() - started
        started = time.perf_counter()
        np.linalg.eigh(pages @ pages.transpose(0, 2, 1))
        t_eigh = time.perf_counter() - started
    print(f"  decomposition only: svd loop {t_svd:.3f} s, batched Gram eigh {t_eigh:.3f} s ({t_svd / t_eigh:.1f}x)")
    xp = gpu_module()
    if xp is np:
        print("  CuPy: no CUDA device here; the GPU path falls back to NumPy (not timed)")
        return
    fit_windows(xp.asarray(levels), rows, xp=xp)  # warm-up: kernels and memory pool
    xp.cuda.Device().synchronize()
    started = time.perf_counter()
    gpu = fit_windows(xp.asarray(levels), rows, xp=xp)
    xp.cuda.Device().synchronize()
    t_gpu = time.perf_counter() - started
    diff = float(np.max(np.abs(gpu.beta - batched.beta)))
    print(f"  batched on CuPy                         {t_gpu:8.3f} s   CuPy vs NumPy {t_batched / t_gpu:6.1f}x")
    print(f"  largest beta difference CuPy vs NumPy: {diff:.1e}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickers", type=int, default=5, help="stocks for the per-model timing (SSA uses all)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--warehouse", default=os.environ.get("PMX_WAREHOUSE", "warehouse/pmx.ducklake"))
    args = parser.parse_args()
    returns = default_returns()
    config = WalkForwardConfig()
    print(
        f"default data: {len(returns)} stocks, {min(len(s) for s in returns.values())} to "
        f"{max(len(s) for s in returns.values())} sessions; {os.cpu_count()} cores\n"
    )
    subset = dict(list(returns.items())[: args.tickers])
    time_models(subset, [m.strip() for m in args.models.split(",") if m.strip() in MODELS], config)
    time_pooled(returns, args.warehouse, config)
    time_ssa(ssa_windows(returns, config), Samossa().rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
