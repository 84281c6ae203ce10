"""Peak memory and time of one step of the graph, on a copy of a warehouse ``bench_scale.py --keep`` left.

Usage::

    python benchmarks/step_memory.py --kept DIR --tickers 100 --step ensemble [--ticker-batch 20] [--compare]
    python benchmarks/step_memory.py --kept DIR --tickers 500 --step classifiers --prepare

``DIR/local_<n>/pmx.ducklake`` (the n-ticker run's warehouse) is copied to a temporary folder (hard
links: the original is not changed), and the step's assets are materialized there in this process,
with the settings that run had (its CSV universe ``DIR/universe_<n>``, the default models) and
``--ticker-batch`` if given. Prints one JSON line: the step, its seconds, this process's peak RSS
before the step (imports, definitions) and at its end (``ru_maxrss``, exact), and with ``--compare``
how far every table the step wrote is from the one in the kept run (the largest difference of a float
column, rows in any order: a check that a change to the step's code left its output as it was;
measured after the peak). A step that runs Dask
workers (``base_forecasts``) is not measured whole this way: their memory is in other processes.

Steps: ``classifiers``, ``classifier_scores``, ``ensemble``, ``model_scores``, ``governance``, ``allocations``,
``model_validation``, ``backtest``, ``dbt_signals`` (dbt's post-forecast build, which runs in this process).

``--prepare`` makes the kept run a step needs when ``DIR`` has none: it writes the n-ticker universe as
``bench_scale.py`` does and materializes everything upstream of the step but the step itself into
``DIR/local_<n>/pmx.ducklake`` (minutes at 500 tickers, where the whole graph takes hours). Only for steps
upstream of which no forecaster runs (``classifiers``): the others need ``bench_scale.py --keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The benchmark's ticker bench_scale.py writes the synthetic index under (its BENCHMARK, not imported:
#: importing bench_scale puts this checkout first on sys.path, and a run of another commit's code sets
#: PYTHONPATH to that commit's checkout).
BENCHMARK = "SP500"

#: Each step's assets (a multi-asset is materialized whole).
STEPS = {
    "ensemble": ["ml/ensemble_forecasts", "ml/ensemble_weights"],
    "model_scores": ["marts/model_scores"],
    "governance": [
        "ml/governed_signals",
        "marts/governance_decisions",
        "marts/governance_reviews",
        "marts/model_risk",
        "marts/feature_drift",
    ],
    "classifiers": ["ml/class_probabilities"],
    "classifier_scores": ["marts/classifier_scores"],
    "allocations": ["marts/allocations", "marts/drawdown_control", "ml/strategy_decisions"],
    "model_validation": ["marts/model_comparisons", "marts/model_leaderboard", "marts/design_targets"],
    "backtest": ["marts/backtest_daily", "marts/backtest_attribution"],
    # dbt's post-forecast build (in this process: dbt runs in-process), its staging views and marts
    "dbt_signals": [
        "staging/stg_ml__base_forecasts",
        "staging/stg_ml__ensemble_forecasts",
        "staging/stg_ml__governed_signals",
        "marts/forecasts",
        "marts/signals",
    ],
}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def table_differences(kept, rebuilt, keys: list[str]) -> dict[str, float | str]:
    """Per table of ``keys``: the largest absolute difference of a float column between ``rebuilt`` and
    ``kept`` (0.0: the same rows exactly), or why they cannot be compared. Both are sorted by every
    column first: a table's row order is not part of it (a DuckLake table written from several files
    may store its rows in another order), and a table's key columns come before its values."""
    import numpy as np

    out: dict[str, float | str] = {}
    with kept.open(read_only=True) as a, rebuilt.open(read_only=True) as b:
        for key in keys:
            table = key.replace("/", ".")
            ordered = f"select * from {table} order by all"
            old, new = a.execute(ordered).df(), b.execute(ordered).df()
            if list(old.columns) != list(new.columns) or len(old) != len(new):
                out[table] = f"columns or row count differ ({len(old)} rows kept, {len(new)} now)"
                continue
            floats = [c for c in old.columns if old[c].dtype.kind == "f"]
            others = [c for c in old.columns if c not in floats]
            if not old[others].equals(new[others]):
                out[table] = "rows differ outside the float columns"
                continue
            diffs = [float(np.nanmax(np.abs(new[c].to_numpy() - old[c].to_numpy()), initial=0.0)) for c in floats]
            same_nan = all((old[c].isna() == new[c].isna()).all() for c in floats)
            out[table] = max(diffs, default=0.0) if same_nan else "missing values differ"
    return out


def kept_settings(universe: Path) -> dict:
    """The settings of a run on the CSV universe ``universe`` (the default models), as a dict of fields."""
    import pandas as pd

    from dagster_pmx.resources import PmxSettings

    end = max(pd.read_csv(universe / f"{BENCHMARK}.csv", usecols=["date"])["date"])
    base = PmxSettings.from_env()
    settings = {name: getattr(base, name) for name in PmxSettings.model_fields}
    settings.update(source="csv", csv_dir=str(universe), tickers="", benchmark=BENCHMARK, start_date="1900-01-01")
    settings.update(end_date=str(end)[:10], models="")
    return settings


def prepare(kept: Path, tickers: int, keys: list[str]) -> None:
    """Write the ``tickers`` universe into ``kept`` as bench_scale.py does and materialize everything upstream
    of ``keys`` but ``keys`` into ``kept/local_<tickers>/pmx.ducklake``; refuses when a forecaster is upstream."""
    import dagster as dg
    from bench_scale import nyse_sessions, write_universe  # this folder is on sys.path when a script runs

    from dagster_pmx.definitions import build_definitions
    from dagster_pmx.resources import PmxSettings, Warehouse

    universe = kept / f"universe_{tickers}"
    path = kept / f"local_{tickers}" / "pmx.ducklake"
    os.environ["PMX_WAREHOUSE"] = str(path)  # dbt's build reads the warehouse from it
    if not universe.is_dir():
        write_universe(universe, tickers, nyse_sessions(18))
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = PmxSettings(**kept_settings(universe))
    defs = build_definitions({"warehouse": Warehouse(path=str(path)), "settings": settings})
    step = dg.AssetSelection.assets(*[dg.AssetKey(key.split("/")) for key in keys])
    upstream = (step.upstream() - step).required_multi_asset_neighbors().resolve(defs.resolve_asset_graph())
    if dg.AssetKey(["ml", "base_forecasts"]) in upstream:
        raise SystemExit(f"{keys} need the forecasts: keep a run with bench_scale.py --keep {kept}")
    started = time.perf_counter()
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=sorted(upstream),
        raise_on_error=True,
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    print(f"prepared {path} ({len(upstream)} assets) in {time.perf_counter() - started:.1f} s", flush=True)
    assert result.success


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kept", required=True, help="the folder bench_scale.py --keep wrote")
    parser.add_argument("--tickers", type=int, required=True, help="the universe size whose warehouse to copy")
    parser.add_argument("--step", choices=sorted(STEPS), required=True)
    parser.add_argument("--ticker-batch", type=int, default=None)
    parser.add_argument("--compare", action="store_true", help="compare the step's tables with the kept run's")
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="first write the universe and materialize the step's upstream into DIR where it has no kept run",
    )
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)  # --prepare's own process
    args = parser.parse_args()
    kept = Path(args.kept)
    source = kept / f"local_{args.tickers}" / "pmx.ducklake"
    universe = kept / f"universe_{args.tickers}"
    if args.prepare_only:
        prepare(kept, args.tickers, STEPS[args.step])
        return 0
    if args.prepare and not source.exists():  # in a process of its own: ru_maxrss would keep its peak
        command = [sys.executable, __file__, "--kept", str(kept), "--tickers", str(args.tickers)]
        subprocess.run([*command, "--step", args.step, "--prepare-only"], check=True)
    if not source.exists() or not universe.is_dir():
        parser.error(f"no kept {args.tickers}-ticker run in {kept} (bench_scale.py --keep {kept})")
    with tempfile.TemporaryDirectory(prefix="pmx-step-memory-") as folder:
        path = str(Path(folder) / "pmx.ducklake")
        os.environ["PMX_WAREHOUSE"] = path
        import dagster as dg

        from dagster_pmx.definitions import build_definitions
        from dagster_pmx.lake import Lake
        from dagster_pmx.resources import PmxSettings, Warehouse

        Lake.at(source).copy_to(path)
        settings = kept_settings(universe)
        if args.ticker_batch:
            settings["ticker_batch"] = args.ticker_batch
        defs = build_definitions({"warehouse": Warehouse(path=path), "settings": PmxSettings(**settings)})
        job = defs.resolve_implicit_global_asset_job_def()
        before = peak_mib()
        started = time.perf_counter()
        result = job.execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=[dg.AssetKey(key.split("/")) for key in STEPS[args.step]],
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        seconds = time.perf_counter() - started
        out = {
            "step": args.step,
            "tickers": args.tickers,
            "ticker_batch": settings.get("ticker_batch"),  # None: a commit before the setting
            "ok": result.success,
            "seconds": round(seconds, 1),
            "peak_mib_before": round(before),
            "peak_mib": round(peak_mib()),
        }
        if args.compare and result.success:
            out["largest_difference_from_kept"] = table_differences(Lake.at(source), Lake.at(path), STEPS[args.step])
        print(json.dumps(out))
        shutil.rmtree(path + ".files", ignore_errors=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
