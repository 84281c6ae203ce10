"""How the whole graph's time and memory grow with the universe: 20, 100 and 500 tickers x 18 years.

Usage: ``python benchmarks/bench_scale.py [--tickers 20,100,500] [--years 18] [--cluster local|tcp|both]
[--out PATH.json] [--keep DIR [--resume]]`` (``make bench-scale``; hours at 500 tickers on a small machine). A smoke
check: ``--tickers 3,6 --years 3`` (a few minutes). ``--report A.json,B.json`` prints the tables of sizes run
apart (earlier ``--out`` files, e.g. one size a session), running nothing.

Data: for each size n, a seeded synthetic universe written as one CSV per ticker (``source = "csv"``)
on the real NYSE sessions (exchange_calendars' XNYS) of the last ``--years`` full years: a market index
under the benchmark's ticker (``SP500``) and n stocks, each ``beta * market + noise`` in log returns,
i.i.d. over time with zero mean (martingale log prices: nothing is learnable), with OHLC around the
close and a lognormal volume. Universes are nested: the first 20 tickers of the 100 are the 20.

Run: the ``full_build`` job with the default model set, in-process (as ``make bench``), into a fresh
temporary warehouse, in a child process of its own per run (after an untimed ``dbt parse`` for that
warehouse, as bench_refresh.py does). ``end_date`` is the last generated session (so the freshness
checks expect it); the other settings are pmx's (pmx.toml and ``PMX_*``; ``models`` is always the
default set), except that a history too short for them (a smoke check) gets ``train_window`` = a
third of its sessions and ``ensemble_window`` = a sixth, at most their settings. Each size runs on

* ``local``: the default local Dask cluster the forecasting steps start (``workers`` processes);
* ``tcp``: ``dask scheduler`` and ``dask worker --nworkers 2 --nthreads 1`` started here as processes
  of their own on 127.0.0.1 (fresh for each run, before its timing), reached by scheduler file
  (the ``scheduler`` setting); workers with one BLAS thread and the scheduler's worker saturation
  at 1.0, as the local cluster has them.

Measured for every step and for the run:

* wall time: from Dagster's STEP_START to STEP_SUCCESS/STEP_FAILURE events; the run's is
  ``execute_in_process``'s wall time (start-up of resources included, imports and parse not);
* peak RSS: the child samples, every 0.2 s in a thread, the RSS summed over itself, its descendants
  (the local cluster's nannies and workers; dbt runs in-process) and, in ``tcp`` mode, the scheduler
  and worker processes; a step's peak is the largest sample within its start and end widened by one
  sampling interval (a step shorter than that still gets a sample). Summed RSS counts pages shared
  between processes once per process, so it overstates the tree's footprint somewhat. The run's
  peak is also given as ``ru_maxrss`` of the child from ``wait4`` (the high-water RSS of the largest
  single process among the child and its reaped descendants; exact, not sampled).

Printed per cluster mode: per step, its time at each n, seconds per ticker at the largest n, the
exponent b of time ~ n^b (least squares of log time on log n; two sizes or more) and the fitted line's
time at 3,000 tickers; the same for peak RSS (with the marginal MiB per ticker between the smallest
and largest n); and the run's totals. ``*`` marks b > 1.1. ``--out`` writes every measurement as JSON.

A long run may be cut short (a machine taken back) or paused. ``--resume`` with the same ``--keep DIR``
finishes what an earlier invocation left: a run goes on with the steps no attempt completed, the
walk-forward from its checkpoint; a step completed earlier keeps that attempt's time and peak, and the
walk-forward's time adds what earlier attempts spent in it (so it includes the work lost at each cut);
a finished run is reported, not run again. Time the run was stopped (SIGSTOP, to free the cores for
something else) is left out of every time: the sampling thread stops with it, so a gap of more than
5 s between samples in which the process used under a fifth of a core is a stop.

Without ``--keep`` each run's warehouse is deleted once measured, except a failed run's: it moves to
``$TMPDIR/bench_scale_failed_<mode>_<n>_<time>`` (with the child's log, dbt's output included), so the
rows a failing check found can still be read: at the lake's latest snapshot
(``dagster_pmx.connect(<folder>/pmx.ducklake, snapshot=N)``), since a failed run records no run point.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: The benchmark's ticker (the setting's default): the synthetic market index is written under it.
BENCHMARK = "SP500"
#: Universe size the fitted power laws are extrapolated to.
EXTRAPOLATE_TO = 3000
#: Exponent above which a step is marked as growing faster than linearly.
SUPERLINEAR = 1.1
#: Seconds between two RSS samples.
SAMPLE_EVERY = 0.2
#: A gap between two samples longer than this is time the run was stopped (SIGSTOP), not counted.
STOPPED_GAP = 5.0
MIB = 1024 * 1024
MODES = {"local": "local Dask cluster (the forecasting steps start it)", "tcp": "2-process Dask cluster over TCP"}


# -- the synthetic universe -----------------------------------------------------------------------


def nyse_sessions(years: int, today: pd.Timestamp | None = None) -> pd.DatetimeIndex:
    """The NYSE sessions of the last ``years`` full calendar years before ``today``'s year."""
    import exchange_calendars as xcals

    end = pd.Timestamp(year=(today or pd.Timestamp.now()).year - 1, month=12, day=31)
    start = pd.Timestamp(year=end.year - years + 1, month=1, day=1)
    calendar = xcals.get_calendar("XNYS", start=start - pd.Timedelta(days=7), end=end + pd.Timedelta(days=7))
    return pd.DatetimeIndex(calendar.sessions_in_range(start, end)).tz_localize(None)


def _ohlcv(rng: np.random.Generator, log_returns: np.ndarray, level: float, vol: float) -> pd.DataFrame:
    """Close from the log returns; open near the previous close; high and low beyond both; volume."""
    n = len(log_returns)
    close = level * np.exp(np.cumsum(log_returns))
    previous = np.concatenate([[level], close[:-1]])
    open_ = previous * np.exp(rng.normal(0.0, vol / 4, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n)))
    volume = rng.lognormal(13.0, 0.5, n).round()
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "adj_close": close, "volume": volume})


def write_universe(folder: Path, n_tickers: int, sessions: pd.DatetimeIndex, seed: int = 7) -> int:
    """One CSV per ticker in ``folder``: the market index (:data:`BENCHMARK`) and ``T0000``... Each
    series has a generator of its own, so a bigger universe holds the smaller ones. Returns the rows."""
    folder.mkdir(parents=True, exist_ok=True)
    dates = sessions.strftime("%Y-%m-%d")
    market_rng = np.random.default_rng([seed, 0])
    market = market_rng.normal(0.0, 0.01, len(sessions))
    frames = {BENCHMARK: _ohlcv(market_rng, market, 1000.0, 0.01)}
    for i in range(n_tickers):
        rng = np.random.default_rng([seed, i + 1])
        beta, idio = rng.uniform(0.5, 1.5), rng.uniform(0.01, 0.025)
        returns = beta * market + rng.normal(0.0, idio, len(sessions))
        frames[f"T{i:04d}"] = _ohlcv(rng, returns, rng.uniform(10.0, 200.0), float(np.hypot(beta * 0.01, idio)))
    for ticker, frame in frames.items():
        frame.insert(0, "date", dates)
        frame.to_csv(folder / f"{ticker}.csv", index=False, float_format="%.6f")
    return len(frames) * len(sessions)


# -- the TCP cluster ------------------------------------------------------------------------------


@contextmanager
def tcp_cluster(folder: Path, workers: int = 2) -> Iterator[tuple[Path, list[int]]]:
    """``dask scheduler`` and ``dask worker --nworkers N --nthreads 1`` on 127.0.0.1, as processes of
    their own; yields the scheduler file and the two processes' ids, and stops them on exit."""
    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "scheduler.json"
    file.unlink(missing_ok=True)
    dask = str(Path(sys.executable).with_name("dask"))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
        "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
    }
    log = (folder / "cluster.log").open("w")
    started: list[subprocess.Popen] = []
    try:
        started.append(
            subprocess.Popen(
                [
                    dask,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(file),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not file.exists():
            raise RuntimeError(f"dask scheduler did not start: {(folder / 'cluster.log').read_text()[-2000:]}")
        started.append(
            subprocess.Popen(
                [dask, "worker", "--nworkers", str(workers), "--nthreads", "1", "--no-dashboard"]
                + ["--scheduler-file", str(file)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        with Client(scheduler_file=str(file)) as client:
            client.wait_for_workers(workers, timeout=120)
        yield file, [process.pid for process in started]
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


# -- the child: one run of the job ----------------------------------------------------------------


class Sampler(threading.Thread):
    """Samples the RSS summed over this process, its descendants and the trees of ``extra`` processes."""

    def __init__(self, extra: list[int], log: Path | None = None) -> None:
        super().__init__(daemon=True)
        import psutil

        self.roots = [psutil.Process()] + [psutil.Process(pid) for pid in extra]
        self.samples: list[tuple[float, float, float]] = []  # (unix time, MiB, this process's CPU seconds)
        self.stopped = threading.Event()
        # each sample also goes to a file as it is taken: a run killed mid-way leaves its samples (--resume)
        self.log = open(log, "a", buffering=1) if log is not None else None  # noqa: SIM115 - closed in stop()

    def sample(self) -> None:
        import psutil

        seen, total = set(), 0
        for root in self.roots:
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for process in tree:
                if process.pid in seen:
                    continue
                seen.add(process.pid)
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
        cpu = self.roots[0].cpu_times()
        self.samples.append((time.time(), total / MIB, cpu.user + cpu.system))
        if self.log is not None:
            self.log.write("{:.3f} {:.1f} {:.2f}\n".format(*self.samples[-1]))

    def run(self) -> None:
        while not self.stopped.is_set():
            self.sample()
            self.stopped.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.sample()
        if self.log is not None:
            self.log.close()

    def peak(self, start: float, end: float) -> float:
        return peak_within(self.samples, start, end)

    def stopped_seconds(self, start: float, end: float) -> float:
        return stopped_seconds(self.samples, start, end)


def peak_within(samples: list[tuple[float, float, float]], start: float, end: float) -> float:
    """The largest RSS sampled from ``start`` to ``end``, widened by one sampling interval."""
    inside = [mib for t, mib, _ in samples if start - SAMPLE_EVERY <= t <= end + SAMPLE_EVERY]
    return max(inside) if inside else math.nan


def stopped_seconds(samples: list[tuple[float, float, float]], start: float, end: float) -> float:
    """The seconds between ``start`` and ``end`` the run was stopped: the sampling thread stops with it (a
    run paused with SIGSTOP while the machine did other work), so a gap between two samples longer than
    :data:`STOPPED_GAP` in which the process used under a fifth of a core counts, less one sampling
    interval (a gap in which it computed is a long call that held the GIL). Steps' and runs' times leave
    it out."""
    return sum(
        min(b, end) - max(a, start) - SAMPLE_EVERY
        for (a, _, cpu_a), (b, _, cpu_b) in zip(samples, samples[1:], strict=False)
        if b - a > STOPPED_GAP and min(b, end) - max(a, start) > SAMPLE_EVERY and not cpu_b - cpu_a >= 0.2 * (b - a)
    )


def step_windows(instance, run_id: str) -> list[dict]:
    """Every step of a run with its start and end (unix time) and status, in the order they ended."""
    from bench_pipeline import step_spans  # this folder is on sys.path when a script runs

    rows = []
    for step, start, end, event in step_spans(instance, run_id):
        status = event.event_type_value[5:].lower()
        rows.append({"step": step, "start": start, "end": end, "status": status})
        if status == "failure":
            rows[-1]["error"] = _root_cause(event)
    return rows


def _root_cause(event) -> str:
    """The innermost error of a failed step ("IndexError: ..."), not Dagster's wrapper around it."""
    error = getattr(event.event_specific_data, "error", None)
    if error is None:
        return ""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()[:2000]  # "IndexError: index -1 is out of bounds ..."


def parse_for(path: str) -> None:
    """dbt's parse for the warehouse at ``path``, untimed (see bench_refresh.set_up_for), under the lock
    the definitions' own parse takes, so a process loading them meanwhile never reads half a manifest."""
    os.environ["PMX_WAREHOUSE"] = path
    from dagster_pmx.defs.transform.project import DBT_DIR, DBT_EXECUTABLE, dbt_env, dbt_project, ensure_packages
    from dagster_pmx.lake import Lake

    manifest = dbt_project.manifest_path
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest.parent / ".parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ensure_packages()
        subprocess.run(
            [DBT_EXECUTABLE, "parse", "--quiet", "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)],
            check=True,
            env={**os.environ, **dbt_env(Lake.at(path))},
            cwd=DBT_DIR,
        )


#: The step whose work a cut run keeps: the walk-forward's checkpoint (dagster_pmx.defs.forecasting.checkpoints).
CHECKPOINTED_STEP = "base_forecasts"


def earlier_attempt(folder: Path) -> dict:
    """What an earlier attempt of a run, cut short or failed, left: its steps (a step it was in when it was
    cut ends at its last RSS sample, status ``cut``), its samples' peak and last time."""
    import dagster as dg

    log = folder / "samples.txt"  # missing where the attempt died before its run started
    lines = log.read_text().splitlines() if log.exists() else []
    # (time, MiB, CPU seconds); a log without the CPU column: NaN, every long gap a stop
    fields = [[float(x) for x in line.split()] for line in lines if line]
    samples = [(f[0], f[1], f[2] if len(f) > 2 else math.nan) for f in fields]
    last = samples[-1][0] if samples else math.nan
    from bench_pipeline import step_spans  # this folder is on sys.path when a script runs

    instance = dg.DagsterInstance.local_temp(tempdir=str(folder / "dagster"))
    steps, unended = [], {}
    for run in instance.get_runs():
        for step, start, end, event in step_spans(instance, run.run_id, unended):
            steps.append({"step": step, "start": start, "end": end, "status": event.event_type_value[5:].lower()})
    steps += [{"step": step, "start": start, "end": last, "status": "cut"} for step, start in unended.items()]
    for step in steps:
        step["stopped_s"] = stopped_seconds(samples, step["start"], step["end"])
        step["seconds"] = step["end"] - step["start"] - step["stopped_s"]
        step["peak_mib"] = peak_within(samples, step["start"], step["end"])
    return {"steps": steps, "peak_mib": max((mib for _, mib, _ in samples), default=math.nan)}


def child(spec_path: str) -> int:
    """One ``full_build`` as the spec says; writes its measurements beside the spec.

    Each attempt keeps its Dagster events and RSS samples in ``attempt-K/``. An attempt after one that was
    cut short (``--resume``) runs only the steps no earlier attempt completed; the walk-forward resumes
    from its checkpoint. Its measurements then combine the attempts: a step completed earlier keeps that
    attempt's time and peak; the walk-forward's time adds the time earlier attempts spent in it (their
    work is in its checkpoint, so this counts the work lost at each cut too), and its peak is the largest
    of its attempts'; the run's peak is the largest of all attempts'. The child process's wall time and
    ``ru_maxrss`` (``process_s``, ``maxrss_mib``) are the last attempt's alone, stops included."""
    import dagster as dg

    spec = json.loads(Path(spec_path).read_text())
    folder = Path(spec["result"]).parent
    earlier = [earlier_attempt(a) for a in sorted(folder.glob("attempt-*"), key=lambda a: int(a.name[8:]))]
    attempt = folder / f"attempt-{len(earlier)}"
    (attempt / "dagster").mkdir(parents=True)
    parse_for(spec["warehouse"])
    from dagster_pmx.definitions import build_definitions
    from dagster_pmx.resources import PmxSettings, Warehouse

    # a new resource, not model_copy(update=...): Dagster builds it from its constructor's config
    base = PmxSettings.from_env()
    fields = {name: getattr(base, name) for name in PmxSettings.model_fields}
    settings = PmxSettings(**{**fields, **spec["settings"]})
    from dagster_pmx.config import load_config

    # the run's DuckDB memory as `pmx run` sets it (duckdb_memory: pmx.toml, PMX_DUCKDB_MEMORY), dbt's included
    memory = load_config().duckdb_memory
    warehouse = Warehouse(path=spec["warehouse"], memory_limit=memory)
    defs = build_definitions({"warehouse": warehouse, "settings": settings})
    instance = dg.DagsterInstance.local_temp(tempdir=str(attempt / "dagster"))
    job_def = defs.resolve_job_def("full_build")
    completed = {s["step"]: s for a in earlier for s in a["steps"] if s["status"] == "success"}
    selection = None
    if completed:  # the assets of the steps no earlier attempt completed
        selection = [
            key
            for assets_def in defs.resolve_asset_graph().assets_defs
            if assets_def.is_executable and assets_def.node_def.name not in completed
            for key in assets_def.keys
        ]
        if not selection:
            raise SystemExit(f"every step of {folder} completed in earlier attempts: nothing to resume")
    sampler = Sampler(spec["cluster_pids"], log=attempt / "samples.txt")
    sampler.start()
    began, started = time.time(), time.perf_counter()
    result = job_def.execute_in_process(
        instance=instance,
        raise_on_error=False,
        asset_selection=selection,
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    job_s, ended = time.perf_counter() - started, time.time()
    sampler.stop()
    steps = step_windows(instance, result.run_id)
    stopped = sampler.stopped_seconds(began, ended)
    for step in steps:
        step["stopped_s"] = sampler.stopped_seconds(step["start"], step["end"])
        step["seconds"] = step["end"] - step["start"] - step["stopped_s"]
        step["peak_mib"] = sampler.peak(step["start"], step["end"])
    ran = {s["step"] for s in steps}
    reused = [completed[name] | {"earlier_attempt": True} for name in completed if name not in ran]
    # an attempt after a cut: its own time, plus the steps completed before it and the walk-forward's earlier work
    cut = [s for a in earlier for s in a["steps"] if s["step"] == CHECKPOINTED_STEP and s["status"] != "success"]
    carried = sum(s["seconds"] for s in cut)
    total_s = job_s - stopped + sum(s["seconds"] for s in reused) + carried
    for step in [*reused, *steps]:  # the walk-forward completed now or in an earlier attempt after the cut
        if step["step"] == CHECKPOINTED_STEP and cut:
            step["carried_s"] = carried
            step["seconds"] += carried
            step["peak_mib"] = max([step["peak_mib"], *(s["peak_mib"] for s in cut)])  # its peak in any attempt
    out = {
        "ok": result.success,
        "job_s": total_s,
        "stopped_s": stopped,
        "peak_mib": max([sampler.peak(began, ended), *(a["peak_mib"] for a in earlier)]),
        "samples": len(sampler.samples),
        "attempts": len(earlier) + 1,
        "models": settings.models or "default",
        "workers": settings.workers,
        "train_window": settings.train_window,
        "ensemble_window": settings.ensemble_window,
        "duckdb_memory": memory,
        "steps": reused + steps,
    }
    Path(spec["result"]).write_text(json.dumps(out))
    return 0


# -- the parent -----------------------------------------------------------------------------------


def run_child(folder: Path, spec: dict) -> dict:
    """The job in a child process; its measurements, with the child's ``wait4`` peak RSS and wall time."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "result": str(folder / "result.json")}
    (folder / "result.json").unlink(missing_ok=True)  # an earlier attempt's, failed
    (folder / "spec.json").write_text(json.dumps(spec))
    started = time.perf_counter()
    with (folder / "child.log").open("a") as log:
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", str(folder / "spec.json")], stdout=log, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if process.returncode != 0 or not (folder / "result.json").exists():
        tail = (folder / "child.log").read_text()[-3000:]
        return {"ok": False, "crashed": True, "process_s": wall, "log_tail": tail, "steps": []}
    out = json.loads((folder / "result.json").read_text())
    run = {**out, "process_s": wall, "maxrss_mib": usage.ru_maxrss / 1024}
    (folder / "run.json").write_text(json.dumps(run))  # what --resume reports of a finished run
    return run


def power_law(ns: list[int], values: list[float]) -> tuple[float, float]:
    """Exponent b and the fitted value at :data:`EXTRAPOLATE_TO` of ``value = a n^b`` (least squares on
    logs over the finite, positive values); NaN with fewer than two sizes."""
    points = [(n, v) for n, v in zip(ns, values, strict=True) if v is not None and math.isfinite(v) and v > 0]
    if len({n for n, _ in points}) < 2:
        return math.nan, math.nan
    x, y = np.log([n for n, _ in points]), np.log([v for _, v in points])
    b, log_a = np.polyfit(x, y, 1)
    return float(b), float(np.exp(log_a + b * math.log(EXTRAPOLATE_TO)))


def _cell(value: float, width: int = 10, digits: int = 2) -> str:
    return f"{'-':>{width}}" if value is None or not math.isfinite(value) else f"{value:>{width}.{digits}f}"


def table(mode: str, ns: list[int], runs: dict[int, dict]) -> dict:
    """Print the time and memory tables of one cluster mode; return the fits."""
    order: list[str] = []
    for n in ns:
        order += [s["step"] for s in runs[n]["steps"] if s["step"] not in order]
    by_step = {n: {s["step"]: s for s in runs[n]["steps"]} for n in ns}
    largest, smallest = ns[-1], ns[0]
    width = max([36, *(len(step) + 2 for step in order)])
    sizes = "".join(f"{'n=' + str(n):>10}" for n in ns)
    fits: dict[str, dict] = {}

    def line(label: str, values: list[float], per: float, digits: int = 2) -> dict:
        b, at = power_law(ns, values)
        mark = " *" if math.isfinite(b) and b > SUPERLINEAR else ""
        cells = "".join(_cell(v, digits=digits) for v in values)
        print(f"{label:<{width}}{cells}{_cell(per, 12, 4)}{_cell(b, 8)}{_cell(at, 12, 1)}{mark}")
        return {"values": dict(zip(ns, values, strict=True)), "b": b, f"at_{EXTRAPOLATE_TO}": at}

    print(f"\n=== {mode}: {MODES[mode]} ===")
    print(f"\nwall time, seconds  (* b > {SUPERLINEAR})")
    print(f"{'step':<{width}}{sizes}{'s/ticker':>12}{'b':>8}{'at ' + str(EXTRAPOLATE_TO):>12}")
    for step in order:
        values = [by_step[n].get(step, {}).get("seconds", math.nan) for n in ns]
        failed = [n for n in ns if by_step[n].get(step, {}).get("status") == "failure"]
        label = step + (f" (FAILED at n={','.join(map(str, failed))})" if failed else "")
        fits[step] = {"seconds": line(label, values, values[-1] / largest)}
    job = [runs[n].get("job_s", math.nan) for n in ns]
    fits["run"] = {"seconds": line("run (job wall time)", job, job[-1] / largest)}
    process = [runs[n].get("process_s", math.nan) for n in ns]
    fits["run"]["process_seconds"] = line("run (child process, imports + parse)", process, process[-1] / largest)

    def marginal(values: list[float]) -> float:
        return (values[-1] - values[0]) / (largest - smallest) if largest > smallest else math.nan

    print(f"\npeak RSS, MiB: summed over the run's processes, sampled every {SAMPLE_EVERY} s  (* b > {SUPERLINEAR})")
    print(f"{'step':<{width}}{sizes}{'MiB/ticker':>12}{'b':>8}{'at ' + str(EXTRAPOLATE_TO):>12}")
    for step in order:
        values = [by_step[n].get(step, {}).get("peak_mib", math.nan) for n in ns]
        fits[step]["peak_mib"] = line(step, values, marginal(values), digits=0)
    peak = [runs[n].get("peak_mib", math.nan) for n in ns]
    fits["run"]["peak_mib"] = line("run (sampled, all processes)", peak, marginal(peak), digits=0)
    maxrss = [runs[n].get("maxrss_mib", math.nan) for n in ns]
    fits["run"]["maxrss_mib"] = line("run (wait4 ru_maxrss, largest process)", maxrss, marginal(maxrss), digits=0)
    print(
        f"(s/ticker: at n={largest}; MiB/ticker: the marginal RSS per ticker from n={smallest} to n={largest}; "
        "b and its extrapolation mean little for a step of a second or less, whose time is mostly fixed cost)"
    )
    for n in ns:
        if not runs[n].get("ok"):
            print(f"n={n}: the run FAILED")
            for step in runs[n]["steps"]:
                if step["status"] == "failure":
                    print(f"  {step['step']}: {step.get('error', '')[:400]}")
            if runs[n].get("crashed"):
                print(runs[n]["log_tail"])
    return fits


def _finite(value: object) -> object:
    """``value`` with every NaN or infinity replaced by None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def settings_for(sessions: int, csv_dir: Path, end: pd.Timestamp, scheduler: str) -> dict:
    """The settings a run overrides: the data, its dates, the cluster, and windows a short history fits."""
    from dagster_pmx.resources import PmxSettings

    base = PmxSettings.from_env()
    return {
        "source": "csv",
        "csv_dir": str(csv_dir),
        "tickers": "",
        "benchmark": BENCHMARK,
        "start_date": "1900-01-01",
        "end_date": str(end.date()),
        "scheduler": scheduler,
        "models": "",  # the default set, whatever PMX_MODELS says
        "train_window": min(base.train_window, max(100, sessions // 3)),
        "ensemble_window": min(base.ensemble_window, max(21, sessions // 6)),
    }


def _commit() -> str | None:
    """The checkout's commit (with ``+changes`` when its tracked files differ), None outside git."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=here, check=False).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip()[:7] + ("+changes" if dirty else "")


def report(paths: list[Path]) -> int:
    """Print the tables of sizes measured by separate invocations (their ``--out`` files): one universe
    family (the same years, sessions and seed), each size and mode from the last file that has it."""
    runs: dict[str, dict[int, dict]] = {}
    metas = []
    for path in paths:
        data = json.loads(path.read_text())
        metas.append(data["meta"])
        for mode, by_n in data["runs"].items():
            for n, run in by_n.items():
                runs.setdefault(mode, {})[int(n)] = run
                commit = data["meta"].get("commit") or "not recorded"
                print(f"{mode} n={n}: {path} (commit {commit}), job {run.get('job_s', math.nan):.1f} s")
    differ = [key for key in ("years", "sessions", "seed") if len({m.get(key) for m in metas}) > 1]
    if differ:
        print(f"--report: the files differ in {differ}: not one universe family", file=sys.stderr)
        return 2
    for mode, by_n in runs.items():
        table(mode, sorted(by_n), by_n)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickers", default="20,100,500", help="universe sizes, comma-separated")
    parser.add_argument("--years", type=int, default=18, help="years of NYSE sessions")
    parser.add_argument("--cluster", choices=("local", "tcp", "both"), default="both")
    parser.add_argument("--out", default=None, help="write every measurement to this JSON file")
    parser.add_argument("--keep", default=None, help="keep the universes, warehouses and logs in this folder")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --keep: finish the runs an earlier invocation left (a run cut short goes on from its last "
        "completed step and the walk-forward's checkpoint; a finished run is reported, not run again)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--report",
        default=None,
        help="print the tables of earlier --out files (comma-separated), each size from the file that has it, "
        "running nothing",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one run, in a process of its own
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    if args.report:
        return report([Path(p) for p in args.report.split(",") if p.strip()])
    if args.resume and not args.keep:
        parser.error("--resume needs --keep DIR, the folder of the runs to finish")
    ns = sorted({int(n) for n in args.tickers.split(",") if n.strip()})
    modes = ["local", "tcp"] if args.cluster == "both" else [args.cluster]
    tmp = None if args.keep else tempfile.TemporaryDirectory(prefix="bench_scale_")
    work = Path(args.keep or tmp.name).resolve()
    sessions = nyse_sessions(args.years)
    from dagster_pmx.resources import PmxSettings

    base = PmxSettings.from_env()
    print(
        f"pmx scaling benchmark: {os.cpu_count()} cores; sizes {ns} tickers + the index x {args.years} years "
        f"({len(sessions)} NYSE sessions, {sessions[0].date()} to {sessions[-1].date()}); modes {modes}; "
        f"the default models; local workers {base.workers}",
        flush=True,
    )
    runs: dict[str, dict[int, dict]] = {mode: {} for mode in modes}
    for n in ns:
        universe = work / f"universe_{n}"
        if not (args.resume and universe.is_dir()):  # a resumed run reads the universe it started on
            t0 = time.perf_counter()
            rows = write_universe(universe, n, sessions, args.seed)
            print(f"n={n}: {rows:,} rows written in {time.perf_counter() - t0:.1f} s", flush=True)
        for mode in modes:
            folder = work / f"{mode}_{n}"
            done = folder / "result.json"
            if args.resume and done.exists() and json.loads(done.read_text()).get("ok"):
                runs[mode][n] = json.loads((folder / "run.json").read_text())
                attempts = runs[mode][n]["attempts"]
                print(f"  {mode:<5}: finished earlier ({attempts} attempts), not run again", flush=True)
                continue
            if not args.resume:
                shutil.rmtree(folder, ignore_errors=True)  # a fresh warehouse
            elif (folder / "spec.json").exists():  # the same settings as the attempts before, or nothing
                before = json.loads((folder / "spec.json").read_text())["settings"]
                now = settings_for(len(sessions), universe, sessions[-1], before["scheduler"])
                if before != now:
                    parser.error(f"--resume: {folder} was started with other settings ({before}), not {now}")
            spec = {"warehouse": str(folder / "pmx.ducklake")}
            if mode == "tcp":
                with tcp_cluster(folder / "dask") as (file, pids):
                    spec |= {
                        "settings": settings_for(len(sessions), universe, sessions[-1], str(file)),
                        "cluster_pids": pids,
                    }
                    run = run_child(folder, spec)
            else:
                spec |= {"settings": settings_for(len(sessions), universe, sessions[-1], ""), "cluster_pids": []}
                run = run_child(folder, spec)
            runs[mode][n] = run
            if not args.keep and not run["ok"]:  # a failed run's warehouse and dbt's logs are the evidence
                kept = Path(tempfile.gettempdir()) / f"bench_scale_failed_{mode}_{n}_{time.strftime('%Y%m%dT%H%M%S')}"
                shutil.move(folder, kept)
                print(f"  {mode}: the failed run's warehouse and logs are kept in {kept}", flush=True)
            elif not args.keep:  # a 500-ticker warehouse is big: one at a time on disk
                shutil.rmtree(folder, ignore_errors=True)
            print(
                f"  {mode:<5}: job {run.get('job_s', math.nan):8.1f} s, child process {run['process_s']:8.1f} s, "
                f"peak {run.get('peak_mib', math.nan):7.0f} MiB (sampled) / {run.get('maxrss_mib', math.nan):6.0f} MiB "
                f"(ru_maxrss), {'ok' if run['ok'] else 'FAILED'}",
                flush=True,
            )
        if not args.keep:
            shutil.rmtree(universe, ignore_errors=True)
    first = next(iter(runs[modes[0]].values()))
    if first.get("train_window") is not None and first["train_window"] != base.train_window:
        print(
            f"\nnote: a short history: train_window {first['train_window']} (setting {base.train_window}), "
            f"ensemble_window {first['ensemble_window']} (setting {base.ensemble_window})"
        )
    fits = {mode: table(mode, ns, runs[mode]) for mode in modes}
    if len(modes) == 2:
        print(
            "\nrun totals, tcp / local:  "
            + "  ".join(
                f"n={n}: time {runs['tcp'][n].get('job_s', math.nan) / runs['local'][n].get('job_s', math.nan):.2f}"
                for n in ns
            )
        )
    if args.out:
        meta = {
            "tickers": ns,
            "years": args.years,
            "sessions": len(sessions),
            "first_session": str(sessions[0].date()),
            "last_session": str(sessions[-1].date()),
            "cores": os.cpu_count(),
            "seed": args.seed,
            "sample_every_s": SAMPLE_EVERY,
            "extrapolate_to": EXTRAPOLATE_TO,
            "commit": _commit(),
        }
        runs_json = {mode: {str(n): run for n, run in by_n.items()} for mode, by_n in runs.items()}
        everything = _finite({"meta": meta, "runs": runs_json, "fits": fits})
        Path(args.out).write_text(json.dumps(everything, indent=1, default=str))
        print(f"\nmeasurements written to {args.out}")
    if tmp is not None:
        tmp.cleanup()
    return 0 if all(run["ok"] for by_n in runs.values() for run in by_n.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
