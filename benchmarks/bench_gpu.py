"""The GPU paths against the CPU, on a machine with a CUDA device.

Usage: ``python benchmarks/bench_gpu.py [--windows 1440,36000] [--json PATH]``

1. SSA (``fit_windows``, the SAMoSSA/mSSA fit) on ``--windows`` training windows of 757 log
   levels (1,440 is every refit of the 20 default stocks; 36,000 is 500 tickers), L = 21:
   NumPy on one thread, NumPy on every core, CuPy; the largest difference in beta / phi / the
   error variances between CuPy and NumPy.
2. The TCN (``TemporalConvNet.fit``, 60 epochs of full-batch Adam) on a 2,000-session series:
   CPU (one thread, as the walk-forward trains it) against CUDA, and the largest difference
   of their forecasts.

Each timing is the median of ``--repeat`` runs after one warm-up (kernels compiled, memory
pools filled); a GPU timing waits for the device to finish. Needs CuPy and torch with CUDA;
without a device it says so and times nothing. Only the numerical library is imported (no
Dagster, DuckDB or dbt), so it runs in a bare GPU image with numpy, scipy, pandas, CuPy and torch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from python_models.forecasters.array_module import gpu_module  # noqa: E402
from python_models.forecasters.ssa import fit_windows  # noqa: E402


def median_time(run, repeat: int, sync=lambda: None) -> float:
    run()  # warm-up
    sync()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_ssa(n_windows: int, repeat: int) -> dict:
    from threadpoolctl import threadpool_limits

    cupy = gpu_module()
    rng = np.random.default_rng(0)
    levels = np.cumsum(rng.normal(0, 0.01, (n_windows, 757)), axis=1)
    with threadpool_limits(limits=1):
        one = median_time(lambda: fit_windows(levels, 21), repeat)
    every = median_time(lambda: fit_windows(levels, 21), repeat)
    cpu = fit_windows(levels, 21)
    on_device = cupy.asarray(levels)
    gpu_time = median_time(lambda: fit_windows(on_device, 21, xp=cupy), repeat, cupy.cuda.Device().synchronize)
    gpu = fit_windows(on_device, 21, xp=cupy)
    diff = max(float(np.max(np.abs(getattr(gpu, k) - getattr(cpu, k)))) for k in ("beta", "phi", "error_var"))
    return {
        "windows": n_windows,
        "numpy_1_thread_s": one,
        "numpy_all_threads_s": every,
        "cupy_s": gpu_time,
        "max_abs_diff": diff,
    }


def bench_tcn(repeat: int) -> dict:
    import torch

    from python_models.forecasters.neural import TemporalConvNet

    rng = np.random.default_rng(1)
    index = pd.bdate_range("2010-01-01", periods=2100)
    returns = pd.Series(rng.normal(0, 0.01, len(index)), index=index)
    train, origins = returns.iloc[:2000], returns.index[2000:2090]

    def fit(device: str):
        return TemporalConvNet(device=device).fit(train)

    cpu_time = median_time(lambda: fit("cpu"), repeat)
    gpu_time = median_time(lambda: fit("cuda"), repeat, torch.cuda.synchronize)
    cpu = fit("cpu").forecast(returns, origins, (1, 5, 21, 63)).mean
    gpu = fit("cuda").forecast(returns, origins, (1, 5, 21, 63)).mean
    return {
        "sessions": len(train),
        "cpu_1_thread_s": cpu_time,
        "cuda_s": gpu_time,
        "max_abs_forecast_diff": float(np.max(np.abs(gpu - cpu))),
        "max_abs_forecast": float(np.max(np.abs(cpu))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", default="1440,36000", help="SSA panel sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    cupy = gpu_module()
    try:
        import torch

        torch_cuda = torch.cuda.is_available()
    except ImportError:
        torch_cuda = False
    if cupy is np and not torch_cuda:
        print("no CUDA device (neither CuPy nor torch sees one): nothing to time")
        return 1
    figures: dict = {"ssa": [], "tcn": None}
    if cupy is not np:
        print(f"CuPy {cupy.__version__} on {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
        header = ("SSA windows", "NumPy 1 thread", "NumPy all", "CuPy", "vs 1 thread", "vs all", "max diff")
        print(" ".join(f"{h:>14}" for h in header))
        for n in (int(w) for w in args.windows.split(",")):
            row = bench_ssa(n, args.repeat)
            figures["ssa"].append(row)
            one, every, gpu = row["numpy_1_thread_s"], row["numpy_all_threads_s"], row["cupy_s"]
            cells = (f"{n}", f"{one:.3f} s", f"{every:.3f} s", f"{gpu:.3f} s", f"{one / gpu:.1f}x")
            cells += (f"{every / gpu:.1f}x",)
            print(" ".join(f"{c:>14}" for c in (*cells, f"{row['max_abs_diff']:.1e}")))
    if torch_cuda:
        row = bench_tcn(args.repeat)
        figures["tcn"] = row
        print(
            f"TCN fit ({row['sessions']} sessions, 60 epochs): CPU one thread {row['cpu_1_thread_s']:.3f} s, "
            f"CUDA {row['cuda_s']:.3f} s ({row['cpu_1_thread_s'] / row['cuda_s']:.1f}x); largest forecast "
            f"difference {row['max_abs_forecast_diff']:.1e} (largest forecast {row['max_abs_forecast']:.1e})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
