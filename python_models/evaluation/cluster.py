"""The fan-out of per-(model, ticker) work onto a Dask cluster (``dask.distributed``).

One code path for one machine and for a team: :func:`dask_client` connects to the scheduler named
in configuration (an address such as ``tcp://10.0.0.5:8786``, or the JSON scheduler file that
``dask scheduler --scheduler-file`` writes), or starts a :class:`~distributed.LocalCluster` of
worker processes on this machine; :func:`map_on_cluster` runs the tasks there. The scheduler
reschedules the tasks of a worker that dies (``distributed.scheduler.allowed-failures`` times),
so a run survives a lost worker.

Each task runs with its :data:`LOGGER` records and its warnings collected and returns them with its
result; the client hands them to this process's loggers and warning filters as each result
arrives, so a worker's log lines reach the run log and its warnings (a window a model could not
be fitted on) are issued here as if the task had run here, not printed on the worker's terminal.
"""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

#: The logger every python_models module logs under; a task's records under it reach this process.
LOGGER = "python_models"
#: A ``scheduler`` setting that ends so names the scheduler file ``dask scheduler --scheduler-file``
#: writes; any other names the scheduler's address.
SCHEDULER_FILE_SUFFIX = ".json"

T = TypeVar("T")
R = TypeVar("R")


@contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A ``distributed.Client`` on the configured cluster, closed on exit.

    Parameters
    ----------
    scheduler : str or None
        A scheduler address (``tcp://host:8786``) or the path of a scheduler file (``*.json``);
        None or empty starts a local cluster of ``workers`` processes, one thread each, that
        lives as long as the client.
    workers : int
        Worker processes of the local cluster; ignored with a scheduler.
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler_file=scheduler) if scheduler.endswith(SCHEDULER_FILE_SUFFIX) else Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    if workers < 1:
        raise ValueError(f"a local cluster needs at least one worker, got {workers}")
    # One thread per worker: the fits are single-threaded Python and BLAS on small matrices; the
    # workers are processes so that the GIL does not serialise them. Loopback only, and the
    # scheduler's HTTP server on a free port (it starts one even without a dashboard, on 8787 by
    # default, which two runs at once would both claim). Dask's own INFO lines stay off the terminal.
    # A worker takes its next task when it finishes one (as a process pool does), rather than holding
    # one in reserve: the fits' lengths differ tenfold between models, and a reserved task waits behind
    # a long fit while the other worker idles at the end of the run.
    with (
        dask.config.set(
            {
                "distributed.scheduler.worker-saturation": 1.0,
                # the workers' statistical profiler samples the task's stack every 10 ms
                "distributed.worker.profile.enabled": False,
                # Dask's default also sets MALLOC_TRIM_THRESHOLD_=65536, which returns freed memory to
                # the system at once; the fits allocate and free small arrays all the time
                "distributed.nanny.pre-spawn-environ": {
                    "OMP_NUM_THREADS": 1,
                    "MKL_NUM_THREADS": 1,
                    "OPENBLAS_NUM_THREADS": 1,
                },
            }
        ),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def fan_out(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    names: Sequence[str],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    client: Any = None,
    progress: Callable[[int, int], None] | None = None,
    local_cluster_from: int = 2,
) -> list[R]:
    """``[fn(task) for task in tasks]``, on a Dask cluster or in this process.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled to the workers); its results must pickle too.
    tasks : sequence
    names : sequence of str
        One per task; the Dask key is ``{name}-{run token}``, which the scheduler's dashboard shows.
    workers, scheduler
        As :func:`dask_client`. Without a scheduler and with one worker, the tasks run here.
    client : distributed.Client, optional
        An open client to use instead (the caller owns it).
    progress : callable, optional
        Called as ``progress(done, total)`` after each task.
    local_cluster_from : int
        The fewest tasks worth starting a local cluster for (it costs seconds to start; at least
        2); fewer run here. A scheduler or a client is always used.

    Returns
    -------
    list
        The results in task order, whatever order they finished in.
    """
    if len(names) != len(tasks):
        raise ValueError(f"{len(tasks)} tasks but {len(names)} names")
    if client is not None:
        return map_on_cluster(client, fn, tasks, names, progress)
    if scheduler or (workers > 1 and len(tasks) >= local_cluster_from):
        with dask_client(scheduler, workers) as own:
            return map_on_cluster(own, fn, tasks, names, progress)
    out = []
    for task in tasks:
        out.append(fn(task))
        if progress:
            progress(len(out), len(tasks))
    return out


def map_on_cluster(
    client: Any,
    fn: Callable[[T], R],
    tasks: Sequence[T],
    names: Sequence[str],
    progress: Callable[[int, int], None] | None = None,
) -> list[R]:
    """Run ``fn`` on every task on the client's cluster; the results in task order.

    A task that raises raises here (the rest are cancelled); a task whose worker died is rerun
    elsewhere by the scheduler.
    """
    from distributed import as_completed

    futures = submit_on_cluster(client, fn, tasks, names)
    position = {future.key: i for i, future in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    shown: dict[Any, Any] = {}
    done = 0
    try:
        for future in as_completed(futures):
            results[position[future.key]] = result_of(future, shown)
            done += 1
            if progress:
                progress(done, len(futures))
    finally:
        client.cancel([f for f in futures if not f.done()])
    return results


def submit_on_cluster(client: Any, fn: Callable[[T], R], tasks: Sequence[T], names: Sequence[str]) -> list[Any]:
    """Start ``fn`` on every task on the client's cluster without waiting: one future per task, to be
    read with :func:`result_of`. Futures submitted earlier run first."""
    level = logging.getLogger(LOGGER).getEffectiveLevel()
    token = uuid.uuid4().hex[:8]
    return [
        client.submit(_logged, fn, task, level, key=f"{name}-{token}", pure=False)
        for task, name in zip(tasks, names, strict=True)
    ]


def result_of(future: Any, shown: dict[Any, Any] | None = None) -> Any:
    """The result of a task :func:`submit_on_cluster` started (waiting for it), with its log records handed
    to this process's loggers and its warnings issued here. ``shown`` is the warnings' registry: one
    per run, so that "default" filters show each warning once, as in one process."""
    result, records, caught = future.result()
    for record in records:
        logging.getLogger(record.name).handle(record)
    for text, category, filename, lineno in caught:
        warnings.warn_explicit(text, category, filename, lineno, registry={} if shown is None else shown)
    return result


def put_on_cluster(client: Any, value: Any, name: str) -> Any:
    """A future of ``value`` held in the cluster's memory, for tasks to take as an argument: the data
    travels to the cluster once, however many tasks read it.

    It is the result of a task that returns it, not scattered data: the scheduler keeps the task, so
    when the worker holding the value dies the value is computed again and the tasks that need it still
    run (they would fail on scattered data, which the scheduler cannot recreate)."""
    import dask

    # the value is sent once, on purpose: Dask's warning about a large graph (above 10 MB) advises this
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1 TiB"}):
        return client.submit(_identity, value, key=f"{name}-{uuid.uuid4().hex[:8]}", pure=False)


def release_freed_memory() -> None:
    """Hand the memory this process has freed back to the system: glibc's (where the C library is glibc) and
    Arrow's memory pool's.

    glibc keeps freed heap memory for the process's next allocations rather than returning it, so a step
    that built gigabytes of frames and then dropped them holds that resident memory to its end (Dask's own
    advice for its workers: "Memory not released back to the OS"). Arrow's pool (mimalloc here) does the
    same with the buffers of every read through Arrow: after reading the 500-ticker features (1,033 MiB in
    pandas) and dropping them, a process held 1,431 MiB with glibc trimmed and 397 MiB once the pool
    released its unused memory (``benchmarks/arrow_pool_memory.py``). Called by the walk-forward once the
    pooled models' panels are on the cluster and after each batch it keeps, and by a pooled task before its
    worker holds its rows and after it keeps them."""
    import ctypes
    import gc
    import sys

    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl): nothing to trim
            pass
    if "pyarrow" in sys.modules:  # a process that never read through Arrow has no pool to release
        sys.modules["pyarrow"].default_memory_pool().release_unused()


def _identity(value: T) -> T:
    return value


#: A warning as a task returns it: message, category, file and line.
Caught = tuple[str, type[Warning], str, int]


def _logged(fn: Callable[[T], R], task: T, level: int) -> tuple[R, list[logging.LogRecord], list[Caught]]:
    """``fn(task)`` in a worker, with the :data:`LOGGER` records it emits at ``level`` or above and
    every warning it raises (the client's filters decide which are shown)."""
    collector = _Collect()
    logger = logging.getLogger(LOGGER)
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(level)
    logger.addHandler(collector)
    logger.propagate = False  # the worker's own handlers would print them on its terminal
    try:
        # process-wide: a worker runs one task at a time (one thread, as docs/scaling.md asks of a team's)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn(task)
    finally:
        logger.removeHandler(collector)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
    return result, collector.records, [(str(w.message), w.category, w.filename, w.lineno) for w in caught]


class _Collect(logging.Handler):
    """Keeps each record, made picklable: the message formatted, the traceback as text."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        copy = logging.makeLogRecord(record.__dict__)
        copy.msg, copy.args = record.getMessage(), None
        if record.exc_info:
            copy.exc_text = logging.Formatter().formatException(record.exc_info)
        copy.exc_info = None
        self.records.append(copy)
