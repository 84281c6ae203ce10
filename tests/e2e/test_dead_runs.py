"""Issue 19: a run killed with ``kill -9`` while it holds the ``warehouse`` pool slot.

Real processes on a real ``$DAGSTER_HOME`` (pmx's own dagster.yaml): a ``pmx run`` is killed once a
step holds the slot; the next run in the pool then waits for it forever, until
:func:`dagster_pmx.dead_runs.recover_dead_runs` marks the dead run failed and frees the slot.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from dagster_pmx.dead_runs import (
    HEARTBEAT_TAG,
    HOST_TAG,
    PID_TAG,
    _process_alive,
    dead_runs_sensor,
    process_tags,
    recover_dead_runs,
)
from tests.e2e.helpers import CLI_SLICE

REPO = Path(__file__).resolve().parents[2]
POOL = "warehouse"
#: The small slice test_cli builds (a full build of it succeeds, in about a minute).
SLICE = {**CLI_SLICE, "PMX_MODELS": "random_walk"}
#: The next run in the pool: one asset in the warehouse pool, run in its own process against
#: $DAGSTER_HOME as `pmx run` runs (execute_in_process), without pmx's slow imports.
PROBE = textwrap.dedent(
    """
    import dagster as dg

    @dg.asset(pool="warehouse")
    def probe() -> None:
        pass

    result = dg.materialize([probe], instance=dg.DagsterInstance.get())
    raise SystemExit(0 if result.success else 1)
    """
)

T = TypeVar("T")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh $DAGSTER_HOME with pmx's instance settings, for this process and the ones it starts."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster_pmx" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return {
        **os.environ,
        **SLICE,
        "DAGSTER_HOME": str(home),
        "PMX_WAREHOUSE": str(tmp_path / "pmx.ducklake"),
        "PYTHONPATH": str(REPO),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }


@pytest.fixture
def instance(env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.get() as instance:
        yield instance


def wait_for(check: Callable[[], T], timeout: float, what: str, proc: subprocess.Popen | None = None) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        assert proc is None or proc.poll() is None, f"the process ended ({proc.returncode}) before {what}"
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def pmx_run(env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "dagster_pmx.cli", "run", "--job", "full_build"]
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    """Kill a process this test started, if it still runs (a failed assertion must not leave it)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def holders(instance: dg.DagsterInstance) -> list[str]:
    """Runs holding a slot of the pool."""
    return [slot.run_id for slot in instance.event_log_storage.get_concurrency_info(POOL).claimed_slots]


def kill_once_it_holds_the_slot(instance: dg.DagsterInstance, env: dict[str, str], log: Path) -> str:
    """Start ``pmx run``, ``kill -9`` it as soon as a step holds the pool slot; its run id."""
    proc = pmx_run(env, log)
    try:
        [run_id] = wait_for(lambda: holders(instance), 120, "a step of `pmx run` to claim the slot", proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        stop(proc)
    return run_id


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None, run_id
    return run.status


def test_a_killed_run_is_failed_its_slot_freed_and_the_waiting_run_completes(env, instance, tmp_path):
    dead = kill_once_it_holds_the_slot(instance, env, tmp_path / "killed.log")
    # The issue: the killed run stays STARTED and keeps the slot.
    assert status(instance, dead) == dg.DagsterRunStatus.STARTED
    assert holders(instance) == [dead]

    # ... so the next run in the pool waits for it: its step is queued for the slot, never given it.
    waiting = subprocess.Popen([sys.executable, "-c", PROBE], cwd=tmp_path, env=env)
    try:

        def queued() -> list:
            pending = instance.event_log_storage.get_concurrency_info(POOL).pending_steps
            return [p for p in pending if p.run_id != dead]

        [step] = wait_for(queued, 60, "the next run to queue for the slot", waiting)
        time.sleep(2.0)  # it polls for the slot meanwhile, in vain
        assert waiting.poll() is None
        assert status(instance, step.run_id) == dg.DagsterRunStatus.STARTED
        assert not instance.all_logs(step.run_id, of_type=dg.DagsterEventType.STEP_START)
        assert holders(instance) == [dead]

        # Recovery fails the dead run and frees its slot; the waiting run is alive and left alone.
        assert recover_dead_runs(instance) == [dead]
        assert status(instance, dead) == dg.DagsterRunStatus.FAILURE
        [failure] = instance.all_logs(dead, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert "process is gone" in failure.message and "kill -9" in failure.message
        assert dead not in holders(instance)

        # The waiting run gets the slot and completes.
        assert waiting.wait(timeout=60) == 0
    finally:
        stop(waiting)
    assert status(instance, step.run_id) == dg.DagsterRunStatus.SUCCESS
    info = instance.event_log_storage.get_concurrency_info(POOL)
    assert not info.claimed_slots and not info.pending_steps
    assert recover_dead_runs(instance) == []  # nothing left to do; the finished runs are untouched
    assert status(instance, step.run_id) == dg.DagsterRunStatus.SUCCESS


def test_only_runs_whose_process_is_provably_gone_count_as_dead(instance):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    runs = {
        "alive": process_tags(),
        "gone": {**process_tags(), PID_TAG: str(ended.pid)},
        "elsewhere": {HOST_TAG: "another-host", PID_TAG: str(ended.pid)},
        "elsewhere, beating": {HOST_TAG: "another-host", HEARTBEAT_TAG: f"{time.time():.0f}"},
        "elsewhere, silent": {HOST_TAG: "another-host", HEARTBEAT_TAG: f"{time.time() - 3600:.0f}"},
        "no process recorded": {},
    }
    ids = {name: str(uuid.uuid4()) for name in [*runs, "failed, holding a slot"]}
    for name, tags in runs.items():
        instance.add_run(DagsterRun(job_name="probe", run_id=ids[name], status=dg.DagsterRunStatus.STARTED, tags=tags))
    # A run marked failed from outside (the UI's terminate; the code server seeing its worker die) keeps
    # its slot; so does a run deleted meanwhile.
    failed = DagsterRun(job_name="probe", run_id=ids["failed, holding a slot"], status=dg.DagsterRunStatus.FAILURE)
    instance.add_run(failed)
    deleted = str(uuid.uuid4())
    storage = instance.event_log_storage
    storage.set_concurrency_slots(POOL, 4)
    for run_id in (ids["alive"], ids["gone"], ids["failed, holding a slot"], deleted):
        assert storage.claim_concurrency_slot(POOL, run_id, "step").is_claimed

    dead = [ids["gone"], ids["elsewhere, silent"]]
    released = sorted([*dead, ids["failed, holding a slot"], deleted])
    assert sorted(recover_dead_runs(instance, dry_run=True)) == released
    assert all(
        status(instance, run_id) == dg.DagsterRunStatus.STARTED for run_id in ids.values() if run_id != failed.run_id
    )
    assert len(holders(instance)) == 4
    assert sorted(recover_dead_runs(instance)) == released
    for run_id in ids.values():
        assert status(instance, run_id) == (
            dg.DagsterRunStatus.FAILURE if run_id in [*dead, failed.run_id] else dg.DagsterRunStatus.STARTED
        )
    assert holders(instance) == [ids["alive"]]  # the live run keeps its slot
    assert recover_dead_runs(instance) == []

    # A pid is only the run's process if that process had started when the run recorded it: after a
    # reboot the pid may belong to anything. A killed process not yet reaped (a zombie) is dead too.
    assert _process_alive(os.getpid(), time.time())
    assert not _process_alive(os.getpid(), time.time() - 3 * 86400)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(lambda: Path(f"/proc/{zombie.pid}/stat").read_text().split(") ")[1][0] == "Z", 10, "a zombie")
    assert not _process_alive(zombie.pid, time.time())
    zombie.wait()


@pytest.mark.slow
def test_pmx_run_after_a_killed_run_releases_it_and_builds(env, instance, tmp_path):
    """``pmx run`` recovers dead runs before it starts (about 80 s: a whole build of the slice)."""
    dead = kill_once_it_holds_the_slot(instance, env, tmp_path / "killed.log")
    log = tmp_path / "second.log"
    second = pmx_run(env, log)
    try:
        code = second.wait(timeout=300)
    finally:
        stop(second)
    assert code == 0, log.read_text()[-3000:]
    assert dead in log.read_text()  # it says which run it released
    assert status(instance, dead) == dg.DagsterRunStatus.FAILURE
    [run] = [r for r in instance.get_runs() if r.run_id != dead]
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags.get(PID_TAG) == str(second.pid)
    assert not holders(instance)


def test_the_sensor_releases_dead_runs_for_the_daemon(instance):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    run_id = str(uuid.uuid4())
    tags = {**process_tags(), PID_TAG: str(ended.pid)}
    instance.add_run(DagsterRun(job_name="probe", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags))
    context = dg.build_sensor_context(instance=instance)
    assert run_id in dead_runs_sensor(context).skip_message
    assert status(instance, run_id) == dg.DagsterRunStatus.FAILURE
    assert dead_runs_sensor(context).skip_message == "no dead run"
