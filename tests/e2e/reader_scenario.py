"""The runs of the reader test (tests/e2e/test_readers_and_runs.py), as a process of its own:
``python -m tests.e2e.reader_scenario TRUNCATED WORK``.

On a copy of the truncated build (``WORK/pmx.ducklake``) an analyst's session (``tests/e2e/reader_probe.py``,
a process) queries every ~0.2 s while three runs go by, each ``python -m dagster_pmx.cli`` in a process of
its own: a daily refresh killed with ``kill -9`` once raw and the features are written, the same refresh
again, then a full build. What the test checks is recorded in ``WORK``: the probe's reads
(``reads.jsonl``), each run's output (``killed.log``, ``refresh.log``, ``full.log``), ``raw.prices`` before
and after (``raw_before.parquet``, ``raw_after.parquet``) and ``scenario.json`` (the state and snapshots
around the kill, each run's exit code). An ``AssertionError`` here is a run that did not go as the scenario
needs (the killed run ended by itself, a run hung): the process exits 1, its output says why.

Its runs are processes the test only waits for, so the session starts it as soon as the truncated build
exists (``tests/e2e/background.py``), and it runs on the machine's second core while the tests before the
reader test run on the first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The refreshes bring six months after the cut (the slice goes on to 2012: less to forecast in the test).
END = "2011-12-30"


def _env(work: Path, warehouse: Path, **overrides: str) -> dict[str, str]:
    from tests.e2e.helpers import SLICE

    home = work / "dagster_home"
    if not home.exists():
        home.mkdir()
        shutil.copyfile(REPO / "dagster_pmx" / "dagster.yaml", home / "dagster.yaml")
    settings = {f"PMX_{k.upper()}": str(v) for k, v in SLICE.items()}
    overrides = {f"PMX_{k.upper()}": v for k, v in overrides.items()}
    return {
        **os.environ,
        **settings,
        **overrides,
        "PMX_WAREHOUSE": str(warehouse),
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(REPO),
    }


#: The runs started: each in a process group of its own (``kill -9`` ends the run and what it started).
RUNS: list[subprocess.Popen] = []


def _pmx_run(env: dict[str, str], job: str, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "dagster_pmx.cli", "run", "--job", job],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    RUNS.append(run)
    return run


def _end_runs() -> None:
    """Kill the runs still going (the scenario failed, or was stopped, meanwhile)."""
    for run in RUNS:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


def _stopped(signum, frame) -> None:  # noqa: ARG001 (a signal handler's signature)
    raise SystemExit(f"stopped by signal {signum}")


def _finish(run: subprocess.Popen, timeout: float) -> int:
    try:
        return run.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        raise AssertionError(f"a run took over {timeout:.0f} s: killed") from None


def main(truncated: Path, work: Path) -> None:
    from dagster_pmx import run_points
    from dagster_pmx.lake import Lake, current_snapshot
    from dagster_pmx.reader import connect
    from tests.e2e.background import wait_for_build
    from tests.e2e.reader_probe import fingerprint

    wait_for_build(truncated)
    warehouse = work / "pmx.ducklake"
    Lake.at(truncated).copy_to(warehouse)
    facts: dict = {}
    with connect(str(warehouse)) as con:
        facts["state_before"] = fingerprint(con)
        con.execute("select ticker, date, source, close from raw.prices").df().to_parquet(work / "raw_before.parquet")
    reads, stop = work / "reads.jsonl", work / "stop"
    probe = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.reader_probe", str(warehouse), str(reads), str(stop)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    refresh_env = _env(work, warehouse, end_date=END)
    try:
        deadline = time.time() + 60
        while (not reads.exists() or len(reads.read_text().splitlines()) < 4) and time.time() < deadline:
            time.sleep(0.2)
        killed_log = work / "killed.log"
        killed = _pmx_run(refresh_env, "daily_refresh", killed_log)
        deadline = time.time() + 300
        while "success  dbt_features" not in killed_log.read_text() and time.time() < deadline:
            assert killed.poll() is None, f"the run to kill ended by itself:\n{killed_log.read_text()[-3000:]}"
            time.sleep(0.2)
        os.killpg(killed.pid, signal.SIGKILL)  # raw and the features are written; forecasts are under way
        killed.wait()
        with Lake.at(warehouse).open(read_only=True) as head:
            facts["last_run_point"] = int(run_points.run_points(head)["snapshot_id"].iloc[0])
            facts["snapshot_after_kill"] = current_snapshot(head)
        with connect(str(warehouse)) as con:
            facts["state_after_kill"] = fingerprint(con)
        # the same refresh again: the killed run's pool slot is freed first (dagster_pmx.dead_runs)
        facts["refresh_exit"] = _finish(_pmx_run(refresh_env, "daily_refresh", work / "refresh.log"), 600)
        with connect(str(warehouse)) as con:
            raw_after = con.execute("select ticker, date, source, close from raw.prices").df()
            raw_after.to_parquet(work / "raw_after.parquet")
        if facts["refresh_exit"] == 0:
            full_env = _env(work, warehouse, end_date=END, models="random_walk")
            facts["full_exit"] = _finish(_pmx_run(full_env, "full_build", work / "full.log"), 600)
            time.sleep(1.0)  # a few reads of the final state
    finally:
        _end_runs()
        stop.touch()
        probe.wait(timeout=60)
    (work / "scenario.json").write_text(json.dumps(facts))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stopped)  # the session ended first (background.stop): end the runs and the probe
    main(Path(sys.argv[1]), Path(sys.argv[2]))
