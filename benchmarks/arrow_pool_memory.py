"""What Arrow's memory pool keeps of a large read once its frame is dropped, on a warehouse
``bench_scale.py --keep`` left.

Usage::

    python benchmarks/arrow_pool_memory.py --kept DIR --tickers 500

Reads the n-ticker run's returns and ``marts.features`` (``DIR/local_<n>/pmx.ducklake``, read-only) as
the forecasting step reads them (``reads.model_inputs``), drops the features, and prints this
process's RSS after the read, after glibc is trimmed (``malloc_trim``) and after Arrow's pool releases
its unused memory (``release_unused``), the last two steps of ``release_freed_memory``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402

from dagster_pmx.defs.forecasting import reads  # noqa: E402
from dagster_pmx.resources import Warehouse  # noqa: E402

MIB = 2**20


def rss() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / MIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kept", required=True, type=Path, help="a folder bench_scale.py --keep wrote")
    parser.add_argument("--tickers", required=True, type=int, help="the run's universe size (local_<n>)")
    args = parser.parse_args()
    warehouse = Warehouse(path=str(args.kept / f"local_{args.tickers}" / "pmx.ducklake"))
    started = time.perf_counter()
    returns, features = reads.model_inputs(warehouse, "SP500", [], None, True)
    print(
        f"read {time.perf_counter() - started:.1f} s: features {features.shape}, "
        f"{features.memory_usage(deep=True).sum() / MIB:.0f} MiB in pandas; "
        f"Arrow's pool: {pa.default_memory_pool().backend_name}"
    )
    print(f"RSS after the read: {rss():.0f} MiB")
    del features
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    print(f"RSS with the features dropped and glibc trimmed: {rss():.0f} MiB")
    pa.default_memory_pool().release_unused()
    print(f"RSS once Arrow's pool released its unused memory: {rss():.0f} MiB (the returns held: {len(returns)} rows)")


if __name__ == "__main__":
    main()
