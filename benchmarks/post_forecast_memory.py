"""dbt's post-forecast build at a universe's size, in minutes: synthetic forecast tables, the real dbt project.

Usage::

    python benchmarks/post_forecast_memory.py --kept DIR --tickers 500 [--models 15] [--memory 1.25GB]

The 500-ticker run of ``bench_scale.py`` takes hours before it reaches dbt's post-forecast build. This
benchmark builds only what that build reads: ``marts.features``, ``marts.targets`` and the returns from the
synthetic universe (``step_memory.py --prepare``'s kept run in ``DIR``, made when missing), and forecast
tables of the size the forecasters write, filled by SQL: ``--models`` single models and three ensembles on
every (ticker, origin, horizon) of ``intermediate.int_forward_returns`` from 2005 (``ml.base_forecasts``:
136 M rows at 500 tickers and 15 models), the governed signals, the fit diagnostics and the classifier's
probabilities. Their values are random but keep every rule the marts' tests check.

On a copy of that warehouse it then runs, each in a process of its own with DuckDB bounded to ``--memory``:

1. ``dbt build --full-refresh --select tag:post_forecast --exclude tag:backtest``, as the run's
   ``dbt_signals`` step runs it (its key test of ``marts.forecasts`` is pmx's);
2. the uniqueness test of ``marts.forecasts``' key as dbt_utils writes it (a group by of the key columns);
3. the same test as dbt compiled it in that build (``dbt_project/macros/unique_combination_of_columns.sql``).

It prints one JSON line per case: passed or the error, seconds, and the process's peak RSS (``wait4``).
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

#: The three ensembles, each drawn from one single model's rows.
ENSEMBLES = {"random_walk": "ensemble", "garch": "ensemble_stacking", "gjr_garch": "ensemble_regime"}
KEY = "model, ticker, asof_date, horizon"
#: The key test as dbt_utils writes it (its default macro), the peer of pmx's form, which is read from the
#: node dbt compiled in the build (:func:`compiled_key_test`), not written a second time here.
DBT_UTILS_KEY_TEST = f"select {KEY} from marts.forecasts group by {KEY} having count(*) > 1"


def synthetic_forecasts(path: str, models: int) -> dict[str, int]:
    """Fill the forecast tables of the lake at ``path`` (which has the feature build's tables); row counts."""
    from dagster_pmx.lake import Lake
    from python_models.forecasters.registry import DEFAULT_MODELS

    # the default set's names, which marts.forecasts' tests accept
    names = ", ".join(f"('{m}')" for m in DEFAULT_MODELS[:models])
    ensembles = " ".join(f"when '{m}' then '{e}'" for m, e in ENSEMBLES.items())
    quarter = "date_trunc('quarter', date)"
    statements = {
        "ml.base_forecasts": f"""
            with origins as (
                select ticker, date, horizon, fwd_return from intermediate.int_forward_returns
                where date >= date '2005-01-01'
            ), models(model) as (values {names})
            select model, ticker, date::timestamp as asof_date, horizon::bigint as horizon,
                random() * 0.01 as y_pred, -0.02 as y_lower, 0.02 as y_upper, 0.01 as y_std, 0.5 as confidence,
                ({quarter} - interval 3 year)::timestamp as train_start,
                ({quarter} - interval 1 day)::timestamp as train_end, true as converged,
                case when fwd_return is not null then (date + to_days(horizon::int))::timestamp_ns end
                    as target_date,
                model || '|' || ticker || '|' || strftime({quarter} - interval 1 day, '%Y-%m-%d') || '|756' as fit_id
            from origins, models""",
        "ml.ensemble_forecasts": f"""
            select case model {ensembles} end as model, ticker, asof_date, horizon, target_date, y_pred, y_lower,
                y_upper, y_std, confidence
            from ml.base_forecasts where model in ({", ".join(f"'{m}'" for m in ENSEMBLES)})""",
        "ml.fit_diagnostics": """
            select distinct fit_id, model, ticker, train_start, train_end, 'aic' as diagnostic, 1.0 as value
            from ml.base_forecasts""",
        "ml.governed_signals": """
            select ticker, asof_date::timestamp_ns as asof_date, horizon, 'ensemble' as model, y_pred, y_std, y_lower,
                y_upper, 0.6 as probability, 0.5 as accuracy, 0.5 as agreement, 0.5 as width, 0.5 as fit,
                0.5 as variance_ratio, 0.5 as classifier, 0.6 as confidence, 1::bigint as direction,
                0::bigint as flips, true as tradable, null::varchar as block_reason
            from ml.ensemble_forecasts where model = 'ensemble'""",
        "ml.class_probabilities": f"""
            with origins as (select distinct ticker, date from marts.features where date >= date '2005-01-01')
            select 'logistic' as model, ticker, date::timestamp as date, target, horizon::bigint as horizon,
                random() as probability, 0.5 as base_rate, ({quarter} - interval 3 year)::timestamp as train_start,
                ({quarter} - interval 1 day)::timestamp as train_end
            from origins, (values ('direction'), ('significant_move')) t(target),
                (values (1), (5), (21), (63)) h(horizon)""",
    }
    with Lake.at(path).open() as con:
        con.execute("create schema if not exists ml")
        for table, select in statements.items():
            con.execute(f"create or replace table {table} as {select}")
        return {table: int(con.execute(f"select count(*) from {table}").fetchone()[0]) for table in statements}


def key_test(path: str, memory: str, sql: str) -> int:
    """The key test ``sql`` in a DuckDB bounded as the run's are (``memory``, a spill folder); prints it."""
    import duckdb

    from dagster_pmx.lake import Lake

    with Lake.at(path).open(read_only=True, memory_limit=memory) as con:
        started = time.perf_counter()
        try:
            failures = len(con.execute(sql).fetchall())
            print(json.dumps({"passed": failures == 0, "failures": failures}))
        except duckdb.OutOfMemoryException as exc:
            print(json.dumps({"passed": False, "error": str(exc).splitlines()[0]}))
        print(json.dumps({"seconds": round(time.perf_counter() - started, 1)}))
    return 0


def compiled_key_test(target: Path) -> str:
    """The SQL dbt compiled for ``marts.forecasts``' key test in the build that wrote ``target``."""
    folder = target / "compiled" / "pmx" / "models" / "marts" / "_marts.yml"
    found = [p for p in folder.glob("dbt_utils_unique_combination_o*.sql") if "asof_date, horizon" in p.read_text()]
    if len(found) != 1:
        raise SystemExit(f"expected one compiled key test of marts.forecasts in {folder}, found {len(found)}")
    return found[0].read_text()


def measured(command: list[str], **popen) -> dict:
    """Run ``command``; its JSON lines merged, its seconds and peak RSS (MiB, ``wait4``), and the tail of its
    output when it failed."""
    with tempfile.TemporaryFile(mode="w+") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, **popen)
        try:  # wait4 for the child's peak RSS, which Popen.wait does not give
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # interrupted: the child goes too
            process.kill()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        log.seek(0)
        output = log.read()
    out: dict = {}
    for line in output.splitlines():
        if line.startswith("{"):
            out |= json.loads(line)
    out |= {"process_s": round(seconds, 1), "peak_mib": round(usage.ru_maxrss / 1024)}
    code = process.returncode
    return out | {"returncode": code, "tail": output[-600:]} if code else out


def dbt_build(path: str, memory: str, target: Path) -> dict:
    """The run's post-forecast build on the lake at ``path``: whether it passed, the nodes that did not,
    the key test's seconds, and the dbt process's seconds and peak RSS."""
    from dagster_pmx.defs.transform.project import DBT_DIR, dbt_env
    from dagster_pmx.lake import Lake

    command = [str(Path(sys.executable).with_name("dbt")), "build", "--full-refresh", "--select", "tag:post_forecast"]
    command += ["--exclude", "tag:backtest", "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)]
    command += ["--target-path", str(target)]
    out = measured(command, env={**os.environ, **dbt_env(Lake.at(path), memory)}, cwd=DBT_DIR)
    if not (target / "run_results.json").exists():  # dbt itself died (the kernel's OOM killer, say)
        return {
            "passed": False,
            "error": out.get("tail", "")[-300:],
            "seconds": out["process_s"],
            "peak_mib": out["peak_mib"],
        }
    results = json.loads((target / "run_results.json").read_text())["results"]
    names = {r["unique_id"]: r["unique_id"].split(".")[2] for r in results}
    key = [r for r in results if names[r["unique_id"]].startswith("dbt_utils_unique_combination_of_columns_forecasts")]
    return {
        "passed": out.get("returncode", 0) == 0,
        "not_passed": [names[r["unique_id"]] for r in results if r["status"] not in ("success", "pass")],
        "key_test_s": round(key[0]["execution_time"], 1) if key else None,
        "seconds": out["process_s"],
        "peak_mib": out["peak_mib"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kept", required=True, help="the folder of step_memory.py --prepare (made when missing)")
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--models", type=int, default=15, help="single models, the first of the default set's 15")
    parser.add_argument("--memory", default="1.25GB", help="DuckDB's memory limit (the run's duckdb_memory)")
    parser.add_argument("--key-test", help=argparse.SUPPRESS)  # a file of one form's SQL, run in its own process
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.key_test:
        return key_test(args.lake, args.memory, Path(args.key_test).read_text())
    kept = Path(args.kept)
    source = kept / f"local_{args.tickers}" / "pmx.ducklake"
    if not source.exists():
        from step_memory import prepare  # this folder is on sys.path when a script runs

        prepare(kept, args.tickers, ["ml/class_probabilities"])
    from dagster_pmx.lake import Lake

    with tempfile.TemporaryDirectory(prefix="pmx-post-forecast-") as folder:
        path = str(Path(folder) / "pmx.ducklake")
        Lake.at(source).copy_to(path)
        started = time.perf_counter()
        rows = synthetic_forecasts(path, args.models)
        print(
            json.dumps({"tickers": args.tickers, "rows": rows, "seconds": round(time.perf_counter() - started, 1)}),
            flush=True,
        )
        # the build first: it creates the views the key tests read
        build = dbt_build(path, args.memory, Path(folder) / "target")
        print(json.dumps({"case": "dbt post-forecast build", "memory": args.memory} | build), flush=True)
        forms = {"dbt_utils": DBT_UTILS_KEY_TEST, "pmx": compiled_key_test(Path(folder) / "target")}
        for form, sql in forms.items():
            (Path(folder) / f"{form}.sql").write_text(sql)
            command = [sys.executable, __file__, "--kept", str(kept), "--lake", path, "--memory", args.memory]
            result = measured([*command, "--key-test", str(Path(folder) / f"{form}.sql")])
            print(json.dumps({"case": f"key test, {form}", "memory": args.memory} | result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
