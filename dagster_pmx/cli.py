"""``python -m dagster_pmx.cli``: materialize the whole graph and print the backtest summary.

Runs the ``full_build`` job in this process against ``$DAGSTER_HOME`` (so the run
shows up in the Dagster UI) and the warehouse at ``$PMX_WAREHOUSE``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

SUMMARY_COLUMNS = [
    "sharpe",
    "cagr",
    "max_drawdown",
    "calmar",
    "information_ratio",
    "hit_rate",
    "profit_factor",
    "volatility",
    "turnover",
]


def _describe(entry, started: float) -> str | None:
    event = entry.dagster_event
    clock = f"[{entry.timestamp - started:6.0f}s]"
    if event is None:
        message = entry.user_message or ""
        return f"{clock}          {message}" if message.startswith("progress:") else None
    kind = event.event_type_value
    if kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
        return f"{clock} {kind[5:].lower():<8} {event.step_key}"
    if kind == "ASSET_CHECK_EVALUATION":
        # Great Expectations gates always; the many dbt tests only when they fail.
        data = event.event_specific_data
        if data.passed and not data.asset_check_key.name.endswith("_expectations"):
            return None
        return f"{clock} check    {data.asset_check_key.to_user_string()}: {'passed' if data.passed else 'FAILED'}"
    return None


def _watch(instance: dg.DagsterInstance, run_id: str, started: float, done: threading.Event, out) -> None:
    """Print step starts, ends and check outcomes to ``out`` as the run records them."""
    seen = 0
    while True:
        finished = done.is_set()
        logs = instance.all_logs(run_id)
        for entry in logs[seen:]:
            line = _describe(entry, started)
            if line:
                print(line, file=out, flush=True)
        seen = len(logs)
        if finished:
            return
        time.sleep(1.0)


def print_summary(warehouse: str) -> None:
    with duckdb.connect(warehouse, read_only=True) as con:
        summary = con.execute("select * from marts.backtest_summary order by sharpe desc").df()
    pd.set_option("display.width", 200)
    table = summary.set_index("strategy")[SUMMARY_COLUMNS + ["start_date", "end_date"]]
    print("\nmarts.backtest_summary (net of costs; benchmark = S&P 500 buy-and-hold)")
    print(table.to_string(float_format=lambda x: f"{x:,.3f}"))
    print(f"""
Where to look next
  SQL : make sql Q="select * from marts.model_scores order by horizon, dm_stat"   (read-only prompt: make sql)
        any DuckDB >= 2.0 client works too: duckdb -readonly {warehouse}
  Py  : duckdb.connect("{warehouse}", read_only=True).sql("select * from marts.signals limit 5")
  UI  : make ui   (Dagster UI on http://127.0.0.1:3000: asset graph, runs, checks, schedules)
  Report: {Path(warehouse).parent / "reports" / "tearsheet.html"}   (equity, drawdown, rolling Sharpe, allocation)
  Data quality: make sql Q="select * from marts.data_quality"   (quarantined rows: raw.quarantine)""")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", default="full_build")
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the incremental dbt models from scratch (after deleting raw rows or changing a model's SQL)",
    )
    args = parser.parse_args(argv)
    if args.full_refresh:
        os.environ["PMX_FULL_REFRESH"] = "1"

    from dagster_pmx.definitions import build_definitions

    defs = build_definitions()  # reads PMX_* now, not when the module was first imported
    warehouse = defs.resources["warehouse"].abs_path
    started = time.time()
    print(f"pmx: materializing job {args.job!r} into {warehouse}", flush=True)
    instance = dg.DagsterInstance.get()
    job = defs.resolve_job_def(args.job)
    run_id = str(uuid.uuid4())
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(instance, run_id, started, done, sys.stdout), daemon=True)
    # dbt's own output (hundreds of lines) goes to a log file; the watcher prints the steps.
    log_path = Path(os.environ.get("DAGSTER_HOME") or ".") / "pmx-last-run.log"
    print(f"pmx: dbt and step output in {log_path}", flush=True)
    watcher.start()
    try:
        with open(log_path, "w") as log, contextlib.redirect_stdout(log):
            result = job.execute_in_process(
                instance=instance,
                raise_on_error=False,
                run_id=run_id,
                # a run config replaces the job's own (the forecasting mode of the daily refresh): keep it
                run_config={**(job.run_config or {}), "loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            )
    finally:
        done.set()
        watcher.join()
    failed = [
        e
        for e in result.all_events
        if e.event_type_value in ("STEP_FAILURE", "ASSET_CHECK_EVALUATION")
        and (e.event_type_value == "STEP_FAILURE" or not e.event_specific_data.passed)
    ]
    print(f"pmx: run {result.run_id} {'succeeded' if result.success else 'FAILED'} in {time.time() - started:.0f}s")
    for e in failed:
        print(f"  - {e.event_type_value} {e.step_key}: {e.message}")
    if not result.success:
        return 1
    print_summary(warehouse)
    return 0


if __name__ == "__main__":
    sys.exit(main())
