"""Memory of keeping one pooled model's walk-forward rows in the checkpoint, where they are kept now and
where they were kept before, on the rows of a run ``bench_scale.py --keep`` left (or any staged batch).

Usage::

    python benchmarks/batch_keep_memory.py --rows FILE

with ``FILE`` e.g. ``DIR/local_500/checkpoints/walk_forward/<fp>/pooled-mssa/rows-000.parquet``.

Each case runs in a process of its own, which first reads the rows (without their ``fit_id``) into
pandas as the model's task returns them, then measures, every 0.02 s, how far its RSS rises above
what it held after that set-up while it does one thing:

- ``received, ids in pandas``: the run's process at 43415a2, before this change: the rows arrive from
  the worker serialized as Dask sends them (``distributed.protocol.serialize_bytes``; the bytes held), are
  deserialized, summed up (``BatchPart.of``), get their ``fit_id`` column from pandas string sums and are
  written by DuckDB scanning the pandas frame;
- ``received, staged as now``: the same, then ``checkpoints.keep_batch`` as now (the ids built by DuckDB
  as it writes, the frame scanned as an Arrow table): the run's process now where the cluster is named by
  address and may not share its disk;
- ``sent from the worker``: a worker at 43415a2: it holds the rows and serializes them for the run;
- ``kept where made``: a worker of the local cluster now (``PooledRuns(then_on_workers=True)``): it
  holds the rows and keeps them itself (``keep_batch``). The run's process then holds none of them;
- ``kept where made, pandas scanned``: the same, but DuckDB scanning the pandas frame rather than an Arrow
  table of it (what ``stage`` did before).

Dask's comms may send a frame's buffers without the one copy ``serialize_bytes`` makes, so the two
"sent" and "received" figures may overstate those steps somewhat. Prints one JSON line per case: rows,
the frame's and (received) the serialized bytes' MiB, seconds, the process's MiB after the set-up, and
the rise above it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CASES = (
    "received, ids in pandas",
    "received, staged as now",
    "sent from the worker",
    "kept where made",
    "kept where made, pandas scanned",
)
MIB = 2**20


def rss() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / MIB


def pandas_fit_ids(frame, pooled: set[str]):
    """The ``fit_id`` column as pmx built it in pandas at 43415a2 (``fits.fit_ids`` then)."""
    import pandas as pd

    ticker = frame["ticker"].where(~frame["model"].isin(pooled), "*")
    start = pd.to_datetime(frame["train_start"]).dt.strftime("%Y-%m-%d")
    end = pd.to_datetime(frame["train_end"]).dt.strftime("%Y-%m-%d")
    return frame["model"] + "/" + ticker + "/" + start + "/" + end


def stage_pandas(frame, path: Path, select: str = "*") -> None:
    """The rows written as ``stage`` wrote them at 43415a2: DuckDB scanning the pandas frame itself."""
    import duckdb

    with duckdb.connect() as scratch:
        scratch.register("batch", frame)
        scratch.execute(f"copy (select {select} from batch) to '{path}' (format parquet)")


def one_case(case: str, rows: Path) -> dict:
    import pandas as pd
    import pyarrow.parquet as pq
    from distributed.protocol import deserialize_bytes, serialize_bytes

    from dagster_pmx.defs.forecasting.checkpoints import BatchPart, Checkpoint, keep_batch
    from dagster_pmx.defs.forecasting.modes import staged_columns
    from python_models.evaluation.cluster import release_freed_memory
    from python_models.evaluation.panel import PanelRun

    columns = [c for c in pq.ParquetFile(rows).schema_arrow.names if c != "fit_id"]
    frame = pd.read_parquet(rows, columns=columns)
    pooled = set(frame["model"].unique())
    received = case.startswith("received")
    frame_mib = frame.memory_usage(deep=True).sum() / MIB
    if received:
        held = serialize_bytes(frame)  # as Dask sends it
        del frame
    release_freed_memory()
    before, peak = rss(), [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            stop.wait(0.02)

    def run_of(forecasts: pd.DataFrame) -> PanelRun:
        return PanelRun(forecasts=forecasts, stats={}, fits={}, importances=None, runs=1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pmx-keep-") as folder:
        checkpoint = Checkpoint(Path(folder), "ab" * 32)
        if received:
            frame = deserialize_bytes(held)
        n = len(frame)
        if case == "received, ids in pandas":  # _Part.of, with_fit_ids and stage at 43415a2
            part = BatchPart.of(run_of(frame))
            frame["fit_id"] = pandas_fit_ids(frame, pooled)
            stage_pandas(frame, Path(folder) / "rows-000.parquet")
        elif case == "sent from the worker":
            sent = serialize_bytes(frame)
            del sent
        elif case == "kept where made, pandas scanned":
            part = BatchPart.of(run_of(frame))
            stage_pandas(frame, Path(folder) / "rows-000.parquet", staged_columns(pooled)["ml.base_forecasts"])
        else:  # what the run's process (received) or the worker (kept where made) does now
            part, _, _ = keep_batch(checkpoint, staged_columns(pooled), "pooled-model", 0, run_of(frame))
        seconds = time.perf_counter() - started
        peak[0] = max(peak[0], rss())
    stop.set()
    sampler.join()
    return {
        "case": case,
        "rows": n,
        "frame_mib": round(frame_mib),
        "serialized_mib": round(len(held) / MIB) if received else None,
        "seconds": round(seconds, 2),
        "held_mib": round(before),
        "rise_mib": round(peak[0] - before),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", required=True, type=Path, help="a staged batch's Parquet file of ml.base_forecasts rows"
    )
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # one case, in a process of its own
    args = parser.parse_args()
    if args.case:
        print(json.dumps(one_case(args.case, args.rows)), flush=True)
        return
    for case in CASES:
        subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--case", case], check=True)


if __name__ == "__main__":
    main()
