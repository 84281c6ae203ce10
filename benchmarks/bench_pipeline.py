"""Time each stage of the full pipeline on the default bundled data.

Usage: ``python benchmarks/bench_pipeline.py [--warehouse PATH]`` (``make bench``). Builds into
a temporary warehouse (the analyst's ``warehouse/pmx.ducklake`` is left alone) with the
settings from the environment, and prints the wall time of every step and the total.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dagster as dg  # noqa: E402


def step_spans(
    instance: dg.DagsterInstance, run_id: str, unended: dict[str, float] | None = None
) -> list[tuple[str, float, float, dg.DagsterEvent]]:
    """(step, start, end, its STEP_SUCCESS or STEP_FAILURE event) of every step of a run, unix times, in the
    order they ended; ``unended``, when given, gets the start of each step that has not ended (a run cut
    short)."""
    starts = unended if unended is not None else {}
    rows = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            rows.append((event.step_key, starts.pop(event.step_key), entry.timestamp, event))
    return rows


def step_times(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, float, str]]:
    """(step, seconds, SUCCESS or FAILURE) of every step of a run, in the order they ended."""
    return [(step, end - start, event.event_type_value[5:]) for step, start, end, event in step_spans(instance, run_id)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warehouse", default=None, help="DuckDB file to build (default: a temporary one)")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = args.warehouse or str(Path(tmp.name) / "bench.ducklake")

    from dagster_pmx.definitions import build_definitions
    from dagster_pmx.resources import PmxSettings, Warehouse

    settings = PmxSettings.from_env()
    defs = build_definitions({"warehouse": Warehouse(path=path), "settings": settings})
    instance = dg.DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = defs.resolve_job_def("full_build").execute_in_process(
        instance=instance, raise_on_error=False, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    )
    total = time.perf_counter() - started
    rows = step_times(instance, result.run_id)
    print(
        f"pmx pipeline benchmark: {os.cpu_count()} cores, forecast_start={settings.forecast_start}, "
        f"train_window={settings.train_window}, refit_every={settings.refit_every}, workers={settings.workers}"
    )
    print(f"{'step':<48}{'seconds':>10}  status")
    for step, seconds, status in rows:
        print(f"{step:<48}{seconds:>10.2f}  {status.lower()}")
    print(f"{'total (job wall time, incl. start-up)':<48}{total:>10.2f}  {'success' if result.success else 'FAILED'}")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
