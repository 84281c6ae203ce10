"""The ``pmx`` command (``pip install .``; the make targets call it).

``pmx run [--job JOB] [--full-refresh]`` materializes a job (``full_build`` by default) in this
process against ``$DAGSTER_HOME`` (so the run shows up in the Dagster UI) and prints the backtest
summary; ``pmx sql`` is a read-only SQL prompt on the warehouse; ``pmx ui`` serves the Dagster UI;
``pmx docs`` builds dbt's documentation site; ``pmx jobs`` lists the jobs and schedules;
``pmx config`` prints every setting in force and where it came from (pmx.toml, a ``PMX_*`` variable,
or the default); ``pmx runs`` lists the run points readers and time travel reach; ``pmx backup`` and
``pmx restore POINT`` copy the warehouse to and from restore points. The warehouse is the one pmx.toml /
``PMX_WAREHOUSE`` names.
``python -m dagster_pmx.cli`` with no command (or only ``run``'s options) is ``pmx run``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import pandas as pd

from dagster_pmx.lake import Lake
from dagster_pmx.reader import connect

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


def fit_times(events: Sequence[dg.DagsterEvent]) -> pd.DataFrame | None:
    """Each model's walk-forward refits, failed windows and fitting seconds, from the metadata of the run's
    ``ml.base_forecasts`` materialization (None when the run did not fit: a daily refresh forecasts with
    the stored fits)."""
    for event in events:
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        materialization = event.event_specific_data.materialization
        if materialization.asset_key != dg.AssetKey(["ml", "base_forecasts"]):
            continue
        meta = {key: entry.value for key, entry in materialization.metadata.items()}
        models = [key.split("/", 1)[1] for key in meta if key.startswith("seconds/")]
        if not models:
            return None
        table = pd.DataFrame(
            {
                "refits": [int(meta[f"fits/{m}"]) for m in models],
                "failed": [int(meta.get(f"failed_fits/{m}", 0)) for m in models],
                "seconds": [float(meta[f"seconds/{m}"]) for m in models],
            },
            index=pd.Index(models, name="model"),
        )
        table["ms_per_refit"] = 1000 * table["seconds"] / table["refits"].clip(lower=1)
        return table.sort_values("seconds", ascending=False)
    return None


def print_fit_times(table: pd.DataFrame) -> None:
    print("\nWalk-forward fits (ml.base_forecasts; seconds summed over the workers, each refit with its forecasts)")
    print(table.to_string(float_format=lambda x: f"{x:,.1f}"))


def print_summary(lake: Lake, folder: Path) -> None:
    with connect(lake=lake) as con:
        summary = con.execute("select * from marts.backtest_summary order by sharpe desc").df()
    pd.set_option("display.width", 200)
    table = summary.set_index("strategy")[SUMMARY_COLUMNS + ["start_date", "end_date"]]
    print("\nmarts.backtest_summary (net of costs; benchmark = the S&P 500 price index, no dividends, buy-and-hold)")
    print(table.to_string(float_format=lambda x: f"{x:,.3f}"))
    unknown = int(summary["cash_rate_unknown_sessions"].max()) if "cash_rate_unknown_sessions" in summary else 0
    if unknown:
        print(
            f"Cash earned 0 on {unknown} sessions without a known T-bill rate (intermediate.int_risk_free; "
            "marts.backtest_daily.cash_rate_known says which)."
        )
    print(f"""
Where to look next (readers never wait for a run, and a run never waits for them)
  SQL : make sql Q="select * from marts.model_scores order by horizon, dm_stat"   (read-only prompt: make sql)
        any DuckDB 1.5 client: {lake.attach_sql(read_only=True)}; USE pmx;
  Py  : import dagster_pmx; dagster_pmx.connect().sql("select * from marts.signals limit 5")
  Runs: pmx runs   (the states kept for time travel: dagster_pmx.connect(run=...), pmx sql --run ...)
  UI  : make ui   (Dagster UI on http://127.0.0.1:3000: asset graph, runs, checks, schedules)
  Report: {folder / "reports" / "tearsheet.html"}   (equity, drawdown, rolling Sharpe, allocation)
  Data quality: make sql Q="select * from marts.data_quality"   (quarantined rows: raw.quarantine)""")


@contextlib.contextmanager
def library_log_to(stream) -> Iterator[None]:
    """``python_models``' log records (hmmlearn's convergence notes, worker processes' too) go to ``stream``
    for the length of the block: the run's log file, not the terminal."""
    library = logging.getLogger("python_models")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    level = library.level
    library.addHandler(handler)
    library.setLevel(logging.INFO)
    try:
        yield
    finally:
        library.removeHandler(handler)
        library.setLevel(level)


def run(args: argparse.Namespace) -> int:
    """``pmx run``: materialize one job in this process and print what it built."""
    if args.full_refresh:
        os.environ["PMX_FULL_REFRESH"] = "1"

    from dagster_pmx.dead_runs import process_tags, recover_dead_runs
    from dagster_pmx.definitions import build_definitions

    defs = build_definitions()  # reads PMX_* now, not when the module was first imported
    warehouse = defs.resources["warehouse"]
    started = time.time()
    print(f"pmx: materializing job {args.job!r} into {warehouse.lake.catalog}", flush=True)
    instance = dg.DagsterInstance.get()
    # a run killed with kill -9 (the OOM killer, a reboot) keeps its pool slot, and this run would wait for it forever
    for dead in recover_dead_runs(instance):
        print(f"pmx: released run {dead}, whose process is gone: its warehouse slot is free again", flush=True)
    job = defs.resolve_job_def(args.job)
    run_id = str(uuid.uuid4())
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(instance, run_id, started, done, sys.stdout), daemon=True)
    # dbt's own output (hundreds of lines) goes to a log file; the watcher prints the steps.
    log_path = Path(os.environ.get("DAGSTER_HOME") or ".") / "pmx-last-run.log"
    print(f"pmx: dbt and step output in {log_path}", flush=True)
    watcher.start()
    try:
        with open(log_path, "w") as log, contextlib.redirect_stdout(log), library_log_to(log):
            result = job.execute_in_process(
                instance=instance,
                raise_on_error=False,
                run_id=run_id,
                tags=process_tags(),  # this process's pid and host: how recover_dead_runs tells it died
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
    fits = fit_times(result.all_events)
    if fits is not None:
        print_fit_times(fits)
    print_summary(warehouse.lake, warehouse.folder)
    return 0


def sql(args: argparse.Namespace) -> int:
    """``pmx sql``: one read-only statement, or a prompt."""
    from dagster_pmx import sql as sql_prompt

    return sql_prompt.main(args.statement, run_id=args.run, snapshot=args.snapshot)


def runs(args: argparse.Namespace) -> int:  # noqa: ARG001
    """``pmx runs``: the run points kept (the states readers and time travel reach), newest first."""
    from dagster_pmx import run_points
    from dagster_pmx.config import load_config

    lake = load_config().lake
    try:
        con = lake.open(read_only=True)
    except FileNotFoundError as exc:
        print(f"pmx runs: {exc}", file=sys.stderr)
        return 1
    with con:
        points = run_points.run_points(con)
    if points.empty:
        print("no run point yet: no run has succeeded on this warehouse")
        return 0
    print(points.to_string(index=False))
    print(
        "\nread one: pmx sql --run RUN_ID  |  dagster_pmx.connect(run=RUN_ID)  |  SQL: ... AT (VERSION => snapshot_id)"
    )
    return 0


def backup_command(args: argparse.Namespace) -> int:
    """``pmx backup``: copy the warehouse to a new restore point (``--list``: the points there)."""
    from dagster_pmx import backup
    from dagster_pmx.config import load_config

    config = load_config()
    folder = Path(args.to or config.backup_dir)
    if args.list:
        found = backup.points(folder)
        print(found.drop(columns="folder").to_string(index=False) if len(found) else f"no restore point in {folder}")
        return 0
    started = time.time()
    point = backup.backup(config.lake, folder)
    print(f"pmx: restore point {point} ({time.time() - started:.1f}s)")
    return 0


def restore_command(args: argparse.Namespace) -> int:
    """``pmx restore POINT``: put a restore point back as the warehouse (no run may be going)."""
    from dagster_pmx import backup
    from dagster_pmx.config import load_config

    config = load_config()
    try:
        catalog = backup.restore(config.lake, args.point, args.source or config.backup_dir)
    except FileNotFoundError as exc:
        print(f"pmx restore: {exc}", file=sys.stderr)
        return 1
    print(f"pmx: restored {args.point} into {catalog}")
    return 0


def ui(args: argparse.Namespace) -> int:
    """``pmx ui``: the Dagster UI (``dagster dev``) for this code location, on loopback by default."""
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-m", "dagster_pmx.definitions", "-h", args.host, "-p", str(args.port)]
    return subprocess.call(command)


def docs(args: argparse.Namespace) -> int:  # noqa: ARG001
    """``pmx docs``: dbt's documentation site for the warehouse (every model, source and column)."""
    from dagster_pmx.config import load_config
    from dagster_pmx.defs.transform.docs import build_docs

    build_docs(lake=load_config().lake)
    return 0


def jobs(args: argparse.Namespace) -> int:  # noqa: ARG001
    """``pmx jobs``: the jobs ``pmx run --job`` accepts, and the schedules that start them."""
    from dagster_pmx.definitions import build_definitions

    defs = build_definitions()
    schedules = {s.job_name: s for s in defs.schedules or []}
    for job in defs.jobs or []:
        schedule = schedules.get(job.name)
        first_sentence = (job.description or "").split(". ")[0].strip().rstrip(".")
        when = (
            f"\n{'':<19}schedule {schedule.name}: {schedule.cron_schedule} ({schedule.execution_timezone})"
            if schedule
            else ""
        )
        print(f"{job.name:<18} {first_sentence}{when}")
    return 0


def config(args: argparse.Namespace) -> int:  # noqa: ARG001
    """``pmx config``: every setting in force and where it came from."""
    from dagster_pmx.config import main as print_config

    return int(print_config() or 0)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="pmx", description="pmx: a SQL-centric warehouse for portfolio research.")
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    run_cmd = commands.add_parser("run", help="materialize a job (full_build by default) and print the summary")
    run_cmd.add_argument("--job", default="full_build", help="the job to run (`pmx jobs` lists them)")
    run_cmd.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the incremental dbt models from scratch (after deleting raw rows or changing a model's SQL)",
    )
    run_cmd.set_defaults(handler=run)
    sql_cmd = commands.add_parser("sql", help="read-only SQL on the warehouse: one statement, or a prompt")
    sql_cmd.add_argument("statement", nargs="*", help="a statement; none opens a prompt")
    sql_cmd.add_argument("--run", help="read the state this run left (a run id or its first characters)")
    sql_cmd.add_argument("--snapshot", type=int, help="read this DuckLake snapshot")
    sql_cmd.set_defaults(handler=sql)
    commands.add_parser("runs", help="the run points kept for readers and time travel").set_defaults(handler=runs)
    backup_cmd = commands.add_parser("backup", help="copy the warehouse to a new restore point")
    backup_cmd.add_argument("--to", help="folder of restore points (default: pmx.toml [storage] backup_dir)")
    backup_cmd.add_argument("--list", action="store_true", help="list the restore points there instead")
    backup_cmd.set_defaults(handler=backup_command)
    restore_cmd = commands.add_parser("restore", help="put a restore point back as the warehouse")
    restore_cmd.add_argument("point", help="a restore point's name (pmx backup --list) or folder")
    restore_cmd.add_argument("--from", dest="source", help="folder of restore points (default: backup_dir)")
    restore_cmd.set_defaults(handler=restore_command)
    ui_cmd = commands.add_parser("ui", help="the Dagster UI for this code location")
    ui_cmd.add_argument("--host", default="127.0.0.1")
    ui_cmd.add_argument("--port", type=int, default=3000)
    ui_cmd.set_defaults(handler=ui)
    commands.add_parser("docs", help="build dbt's documentation site of the warehouse").set_defaults(handler=docs)
    commands.add_parser("jobs", help="list the jobs and their schedules").set_defaults(handler=jobs)
    commands.add_parser("config", help="print every setting in force and where it came from").set_defaults(
        handler=config
    )
    return top


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("--job") or argv[0] == "--full-refresh":
        argv = ["run", *argv]  # `python -m dagster_pmx.cli [--job ...]`, as before the subcommands
    args = parser().parse_args(argv)
    if args.handler in (jobs, config) and hasattr(signal, "SIGPIPE"):
        # `pmx jobs | head` ends quietly, as a Unix listing does; not for runs, whose HTTP clients must see
        # a closed connection as an error to retry rather than die of the signal
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    ensure_dagster_home()
    return int(args.handler(args))


def ensure_dagster_home() -> None:
    """``$DAGSTER_HOME`` (default ``./.dagster_home``) exists and holds pmx's instance settings."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        shutil.copyfile(Path(__file__).with_name("dagster.yaml"), settings)


if __name__ == "__main__":
    sys.exit(main())
