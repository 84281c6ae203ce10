"""Runs whose process is gone: marked failed, and their concurrency pool slots freed.

A run killed with ``kill -9`` (or by the OOM killer, or a reboot) never records its end: it stays
STARTED in the run storage and keeps its claim on the ``warehouse`` pool slot, so every later run
waits for that slot forever (issue 19). :func:`recover_dead_runs` finds such runs and releases them:

- a run in STARTING, STARTED or CANCELING is dead when none of the processes it recorded is alive:
  the pid and host ``pmx run`` tags its runs with (:func:`process_tags`), and the pids Dagster's run
  worker writes in its engine events ("Started process for run (pid: N)", "Executing steps in
  process (pid: N)"). A pid is only checked on the host that recorded it: a run tagged with another
  host is dead only when its heartbeat tag (:data:`HEARTBEAT_TAG`, optional) is stale, and an
  untagged run (launched from the UI or a schedule) only counts as local when the instance's run
  storage is SQLite or in memory, which one machine owns. A pid that now belongs to a process
  started after the run recorded it was reused (after a reboot, typically): the run's process is
  gone. A run with no recorded process, or one that cannot be checked, is left alone.
- a dead run is reported failed (CANCELING: canceled) with a message saying why, and every slot and
  pending claim it holds in any pool is freed, so the next queued step gets the slot;
- claims held by a run that has already finished, or that no longer exists, are freed as well (the
  UI's "terminate", or Dagster's code server noticing a dead run worker, mark a run failed without
  freeing its slots).

Live runs are never touched: any recorded process alive on this host keeps its run as it is.
``pmx run`` calls it before it starts its own run; :data:`dead_runs_sensor` calls it every minute
from the daemon, for the runs launched from the UI and by the schedules.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.dagster_run import FINISHED_STATUSES, RunRecord, RunsFilter
from dagster._core.storage.runs import InMemoryRunStorage, SqliteRunStorage

logger = logging.getLogger(__name__)

#: Run tags ``pmx run`` sets: the pid and host of the process that executes the run.
PID_TAG = "pmx/pid"
HOST_TAG = "pmx/host"
#: Optional run tag: the epoch second the run's process last proved alive (a run on another host).
HEARTBEAT_TAG = "pmx/heartbeat"
#: Seconds after which a heartbeat is stale: far above any interval a live process beats at.
HEARTBEAT_STALE_SECONDS = 600.0

#: Statuses in which a run has a process that should be alive.
LIVE_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
#: Events in which Dagster records the pid of a run worker or of a step's subprocess.
PID_EVENTS = {DagsterEventType.ENGINE_EVENT, DagsterEventType.STEP_WORKER_STARTED}
#: Slack between a process's start time read from /proc and the time it recorded itself: the start
#: time is derived from the boot time, which /proc gives to the second.
START_TIME_SLACK_SECONDS = 5.0


def process_tags() -> dict[str, str]:
    """Tags naming this process, for a run it executes (``execute_in_process(tags=...)``).

    Returns
    -------
    dict[str, str]
        :data:`PID_TAG` and :data:`HOST_TAG`. They are stored with the run before any step starts,
        so a run killed at any moment can be checked.
    """
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def heartbeat_tags() -> dict[str, str]:
    """A fresh :data:`HEARTBEAT_TAG`, for ``instance.add_run_tags`` from a live run's process.

    Returns
    -------
    dict[str, str]
        The heartbeat tag set to now (epoch seconds).
    """
    return {HEARTBEAT_TAG: f"{time.time():.0f}"}


def recover_dead_runs(instance: dg.DagsterInstance, *, dry_run: bool = False) -> list[str]:
    """Mark runs whose process is gone as failed and free the pool slots they hold.

    Parameters
    ----------
    instance
        The Dagster instance (``DagsterInstance.get()``: ``$DAGSTER_HOME``).
    dry_run
        Only find them: report nothing, free nothing.

    Returns
    -------
    list[str]
        The ids of the runs released: dead runs marked failed (or canceled), and finished or
        deleted runs whose leftover claims were freed. Empty when there was nothing to do.
    """
    released: list[str] = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=LIVE_STATUSES)):
        run = record.dagster_run
        alive, why = _run_is_alive(instance, record)
        if alive is not False:
            logger.debug("run %s left alone: %s", run.run_id, why)
            continue
        released.append(run.run_id)
        if dry_run:
            continue
        _report_dead(instance, run.run_id, why)
        _free_claims(instance, run.run_id)

    # Claims of runs that are over (or gone) block the pool as surely as a dead run's.
    holders = _claim_holders(instance) - set(released)
    if holders:
        known = {
            r.dagster_run.run_id: r.dagster_run
            for r in instance.get_run_records(filters=RunsFilter(run_ids=sorted(holders)))
        }
        for run_id in sorted(holders):
            holder = known.get(run_id)
            if holder is not None and holder.status not in FINISHED_STATUSES:
                continue  # in progress (judged above) or not started yet: its claims are its own
            released.append(run_id)
            if not dry_run:
                ended = holder.status.value if holder else "deleted"
                logger.warning("freeing the pool claims of run %s, which has ended (%s)", run_id, ended)
                _free_claims(instance, run_id)
    return released


def _report_dead(instance: dg.DagsterInstance, run_id: str, why: str) -> None:
    # Re-read the run: it may have ended on its own while we looked.
    run = instance.get_run_by_id(run_id)
    if run is None or run.status not in LIVE_STATUSES:
        return
    ending = "canceled" if run.status == dg.DagsterRunStatus.CANCELING else "failed"
    message = (
        f"pmx: this run's process is gone ({why}): it was killed (kill -9, the OOM killer, a reboot) "
        f"without recording its end. Marked {ending} by dagster_pmx.dead_runs, which freed its pool slots."
    )
    logger.warning("run %s is dead (%s): marking it %s", run_id, why, ending)
    if run.status == dg.DagsterRunStatus.CANCELING:
        # It was being canceled: it ends canceled, as Dagster's own cancel timeout would end it.
        instance.report_run_canceled(run, message=message)
    else:
        instance.report_run_failed(run, message=message)


def _free_claims(instance: dg.DagsterInstance, run_id: str) -> None:
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        # Frees the slots and drops the pending claims of every step of the run, in every pool, and
        # assigns the freed slots to the next pending steps in the queue.
        storage.free_concurrency_slots_for_run(run_id)


def _claim_holders(instance: dg.DagsterInstance) -> set[str]:
    """Run ids holding a slot or a pending claim in any pool."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return set()
    holders = set(storage.get_concurrency_run_ids())  # pending (and assigned) claims
    for info in storage.get_concurrency_infos(sorted(storage.get_concurrency_keys())).values():
        holders.update(slot.run_id for slot in info.claimed_slots)
    return holders


def _run_is_alive(instance: dg.DagsterInstance, record: RunRecord) -> tuple[bool | None, str]:
    """Whether the run's process lives: True, False, or None when it cannot be told; and why."""
    run = record.dagster_run
    here = socket.gethostname()
    host = run.tags.get(HOST_TAG)
    if host is not None and host != here:
        try:
            age = time.time() - float(run.tags[HEARTBEAT_TAG])
        except (KeyError, ValueError):
            return None, f"its process is on host {host}, and it records no heartbeat"
        if age > HEARTBEAT_STALE_SECONDS:
            return False, f"host {host} last reported it alive {age:.0f}s ago"
        return True, f"host {host} reported it alive {age:.0f}s ago"
    if host is None and not isinstance(instance.run_storage, SqliteRunStorage | InMemoryRunStorage):
        # A shared run storage (Postgres, MySQL) may hold runs of other machines: a pid means nothing.
        return None, "no host recorded, and the run storage is shared"

    processes = list(_recorded_processes(instance, record))
    if not processes:
        return None, "no process recorded yet"
    alive = [pid for pid, since in processes if _process_alive(pid, since)]
    if alive:
        return True, f"process {alive[0]} is alive"
    pids = ", ".join(str(pid) for pid in sorted({pid for pid, _ in processes}))
    return False, f"no process of the run is alive on {here} (pid {pids})"


def _recorded_processes(instance: dg.DagsterInstance, record: RunRecord) -> Iterable[tuple[int, float]]:
    """Each (pid, time by which that process had started) the run recorded."""
    tagged = record.dagster_run.tags.get(PID_TAG)
    if tagged is not None:
        yield int(tagged), record.create_timestamp.timestamp()
    for entry in instance.all_logs(record.dagster_run.run_id, of_type=PID_EVENTS):
        event = entry.dagster_event
        metadata = getattr(event.event_specific_data, "metadata", None) if event else None
        pid = (metadata or {}).get("pid")
        if pid is not None:
            with contextlib.suppress(ValueError):
                yield int(pid.value), entry.timestamp


def _process_alive(pid: int, started_by: float) -> bool:
    """Whether ``pid`` is a live process of this host that had started by ``started_by`` (epoch s)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc (macOS) or it just ended: existence is all we know
    state, start = stat
    if state in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    # A process that started after the run recorded this pid has reused the pid.
    return start is None or start <= started_by + START_TIME_SLACK_SECONDS


def _proc_stat(pid: int) -> tuple[str, float | None] | None:
    """The state letter and start time (epoch seconds) of ``pid`` from /proc, or None without /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    state, ticks = fields[0], int(fields[19])  # fields 3 and 22 of proc(5)
    boot = _boot_time()
    return state, None if boot is None else boot + ticks / os.sysconf("SC_CLK_TCK")


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


@dg.sensor(
    name="recover_dead_runs",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: runs whose process is gone (killed with kill -9, by the OOM killer, a reboot) are "
    "marked failed and their warehouse pool slots freed, so the scheduled runs do not wait for them forever.",
)
def dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """:func:`recover_dead_runs` from the daemon, for runs launched from the UI or by a schedule.

    Sensors are evaluated by the code server, on the host whose run workers the default run launcher
    starts: their pids can be checked there.

    Parameters
    ----------
    context
        The sensor's evaluation context (its instance is ``$DAGSTER_HOME``'s).

    Returns
    -------
    dagster.SkipReason
        It requests no run; the reason names the runs it released, if any.
    """
    released = recover_dead_runs(context.instance)
    return dg.SkipReason(f"released {len(released)} dead run(s): {', '.join(released)}" if released else "no dead run")
