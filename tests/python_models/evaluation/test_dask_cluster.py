"""The walk-forward, the retrain's refits and the refresh's extension on Dask clusters: a local cluster,
a cluster that loses a worker mid-run, and a scheduler with workers of their own over TCP on loopback.
Each must give the serial path's rows bit for bit."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client, get_task_stream, wait

from python_models.evaluation import cluster
from python_models.evaluation.cluster import dask_client
from python_models.evaluation.panel import PooledRuns, panels_by_model, pooled_panel, run_panel, run_pooled
from python_models.evaluation.refresh import forecast_from_fits, refit_latest
from python_models.evaluation.walk_forward import WalkForwardConfig
from python_models.forecasters.garch import Garch
from python_models.forecasters.hmm import GaussianHmm
from python_models.forecasters.mssa import Mssa
from python_models.forecasters.random_walk import RandomWalk
from python_models.forecasters.sarimax import Sarimax, SarimaxExog
from tests.conftest import arma_returns

REPO = Path(__file__).resolve().parents[3]
CONFIG = WalkForwardConfig(horizons=(1, 5), train_window=300, refit_every=100, embargo=0)


def panel(tickers: int, n: int = 700) -> pd.DataFrame:
    frames = []
    for i in range(tickers):
        r = arma_returns(n=n, seed=i)
        frames.append(pd.DataFrame({"ticker": f"T{i}", "date": r.index, "log_return": r.to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def models():
    return [RandomWalk(), Sarimax(), Garch()]


@pytest.fixture(scope="module")
def serial():
    long = panel(4)
    return long, run_panel(models(), long, CONFIG, workers=1)


@pytest.fixture(scope="module")
def client():
    with dask_client(None, 2) as c:
        yield c


def test_a_local_cluster_gives_the_serial_rows_bit_for_bit(serial, monkeypatch):
    long, one = serial
    started = []

    @contextmanager
    def recorded(scheduler, workers):
        with dask_client(scheduler, workers) as c:
            started.append(len(c.scheduler_info()["workers"]))
            yield c

    monkeypatch.setattr(cluster, "dask_client", recorded)
    two = run_panel(models(), long, CONFIG, workers=2)  # run_panel starts and stops its own local cluster
    assert started == [2]  # the rows below came from two worker processes, not from this one
    pd.testing.assert_frame_equal(one.forecasts, two.forecasts)
    assert one.stats.keys() == two.stats.keys() and one.fits.keys() == two.fits.keys()
    assert [s.fits for s in one.stats.values()] == [s.fits for s in two.stats.values()]
    assert set(one.forecasts["model"]) == {"random_walk", "sarimax", "garch"}


def test_the_retrain_and_the_refresh_on_a_cluster_equal_the_serial_path(serial, client):
    long, run = serial
    here = refit_latest(models(), long, CONFIG)
    there = refit_latest(models(), long, CONFIG, client=client)
    assert here.keys() == there.keys() and len(here) == 12
    for key, fit in here.items():
        assert (fit.train_start, fit.train_end, fit.converged) == (
            there[key].train_start,
            there[key].train_end,
            there[key].converged,
        )
    # the refresh: every stored fit forecasts the origins after the first 600 sessions' forecasts
    cut = long["date"].drop_duplicates().sort_values().iloc[600]
    after = {key: cut for key in run.fits}
    a = forecast_from_fits(run.fits, long, after, CONFIG.horizons)
    b = forecast_from_fits(run.fits, long, after, CONFIG.horizons, client=client)
    assert len(a) and (a["asof_date"] > cut).all()
    pd.testing.assert_frame_equal(a, b)
    # forecasts from the refitted models agree too: the fits came back whole
    c = forecast_from_fits(here, long, after, CONFIG.horizons)
    d = forecast_from_fits(there, long, after, CONFIG.horizons, client=client)
    pd.testing.assert_frame_equal(c, d)


def test_a_worker_killed_mid_run_has_its_tasks_rerun(serial):
    long, one = serial
    killed = []
    with dask_client(None, 2) as c:

        def kill_a_busy_worker(done: int, total: int) -> None:
            if killed:
                return
            busy = [address for address, keys in c.processing().items() if keys]
            if busy:  # SIGKILL: no goodbye to the scheduler, as when a machine dies
                pid = c.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        two = run_panel(models(), long, CONFIG, client=c, progress=kill_a_busy_worker)
        # the nanny restarts the killed process: two workers again, one of them new
        deadline = time.monotonic() + 60
        while len(c.scheduler_info()["workers"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = set(c.run(os.getpid).values())
    assert killed and killed[0] not in pids
    pd.testing.assert_frame_equal(one.forecasts, two.forecasts)


@pytest.fixture(scope="module")
def tcp_cluster(tmp_path_factory):
    """``dask scheduler`` and ``dask worker --nworkers 2``: processes of their own, over TCP on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("dask")
    file = folder / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    dask = [str(Path(sys.executable).with_name("dask"))]
    log = (folder / "cluster.log").open("w")
    scheduler = subprocess.Popen(
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    workers = None
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert file.exists(), (folder / "cluster.log").read_text()
        workers = subprocess.Popen(
            [*dask, "worker", "--nworkers", "2", "--nthreads", "1", "--no-dashboard", "--scheduler-file", str(file)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        with Client(scheduler_file=str(file)) as c:
            c.wait_for_workers(2, timeout=60)
        yield file
    finally:
        for process in (workers, scheduler):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        log.close()


class SlowMssa(Mssa):
    """mSSA that takes a while over each fold, so that its task is still running when it is killed."""

    def fit(self, panel):
        time.sleep(0.5)
        return super().fit(panel)


def test_a_pooled_model_runs_as_a_task_on_the_cluster_and_survives_a_killed_worker():
    # the pooled mSSA runs on the cluster (the panel sent once, as a task's result) beside the single-series
    # runs; the worker that holds the panel is killed once the pooled task has started: the scheduler computes
    # the panel again and reruns the task, and the rows are the serial path's
    long = panel(3, n=600)
    mixed = [RandomWalk(), SlowMssa()]
    one = run_panel(mixed, long, CONFIG, workers=1)
    killed = []
    with dask_client(None, 2) as c:

        def kill_the_pooled_worker(done: int, total: int) -> None:
            if killed:
                return
            holders = [address for address, keys in c.processing().items() if any("mssa" in str(k) for k in keys)]
            if holders:
                pid = c.run(os.getpid, workers=[holders[0]])[holders[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        two = run_panel(mixed, long, CONFIG, client=c, progress=kill_the_pooled_worker)
    assert set(one.forecasts["model"]) == {"random_walk", "mssa"} and killed
    pd.testing.assert_frame_equal(one.forecasts, two.forecasts)
    assert one.fits.keys() == two.fits.keys()
    pd.testing.assert_frame_equal(one.diagnostics, two.diagnostics)


def test_a_pooled_models_rows_leave_the_cluster_as_soon_as_it_ends(client):
    # the full build takes each pooled model's rows between its ticker batches, not at the end of the step:
    # held on the cluster until then, the default pooled models' rows of 500 tickers were gigabytes
    long = panel(3, n=600)
    started = PooledRuns([Mssa()], long, CONFIG, None, None, client)
    assert started.futures is not None
    wait(started.futures)
    taken = list(started.finished())
    assert len(taken) == 1 and list(started.finished()) == [] and list(started.runs()) == []
    expected, _ = run_pooled(Mssa(), long, CONFIG)
    place, run = taken[0]
    assert place == 0
    pd.testing.assert_frame_equal(run.forecasts, expected.assign(model="mssa")[["model", *expected.columns]])

    def held(dask_scheduler) -> list[str]:
        return [str(k) for k in dask_scheduler.tasks if "mssa" in str(k) or "pooled-panel" in str(k)]

    deadline = time.monotonic() + 10
    while client.run_on_scheduler(held) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.run_on_scheduler(held) == []  # neither the rows nor the panel stay on the cluster


def _made_where(i: int, run) -> tuple[int, int, int]:
    """A ``then`` of PooledRuns: the process it ran in, the model's place and its rows."""
    return os.getpid(), i, len(run.forecasts)


def test_a_pooled_models_then_runs_where_its_rows_are_made_and_only_its_result_travels(client):
    # the full build keeps a pooled model's rows in its checkpoint from the worker that made them (a local
    # cluster shares the disk): the run's process never holds them. Elsewhere (a cluster named by address)
    # the rows come back and the same ``then`` runs here.
    long = panel(3, n=600)
    expected, _ = run_pooled(Mssa(), long, CONFIG)
    there = dict(
        PooledRuns([Mssa(), Mssa()], long, CONFIG, None, None, client, then=_made_where, then_on_workers=True).runs()
    )
    workers = set(client.run(os.getpid).values())
    assert sorted(there) == [0, 1]
    for j, (pid, i, rows) in there.items():
        assert pid in workers and pid != os.getpid() and i == j and rows == len(expected)
    here = dict(PooledRuns([Mssa()], long, CONFIG, None, None, client, then=_made_where).runs())
    assert here == {0: (os.getpid(), 0, len(expected))}
    alone = dict(PooledRuns([Mssa()], long, CONFIG, None, None, then=_made_where, then_on_workers=True).runs())
    assert alone == {0: (os.getpid(), 0, len(expected))}  # no cluster: fitted and handed on here


def test_the_pooled_models_run_one_at_a_time_beside_the_single_series_tasks(client):
    # on two workers one pooled task runs at a time while the caller has single-series batches (each holds a
    # panel and a model's whole history of forecasts: gigabytes at 500 tickers), the next started when the
    # caller takes one's rows; once it reads the rest (runs()), on every worker. Each model's rows arrive at
    # its place.
    long = panel(3, n=600)
    pooled = [SlowMssa(), Mssa(), SlowMssa()]
    with get_task_stream(client) as stream:
        started = PooledRuns(pooled, long, CONFIG, None, None, client)
        assert len(started.futures) == 1  # the others wait for it
        taken: dict = {}
        while len(taken) < 2:  # between the caller's batches
            wait(started.futures[-1])
            assert len(started.futures) == len(taken) + 1
            taken |= dict(started.finished())
        taken |= dict(started.runs())
    spans = sorted(
        (t["startstops"][0]["start"], t["startstops"][-1]["stop"])
        for t in stream.data
        if "walk-forward-mssa" in t["key"]
    )
    # the second started after the first ended. The task stream's times are each worker's clock corrected by
    # the scheduler's estimate of its offset, which a loaded machine puts ~0.1 s off (a CI run saw the second
    # start 0.09 s "before" the first ended): within 0.5 s, and well after the first began (its mSSA sleeps
    # 0.5 s a fold), where two at once would have started together
    assert len(spans) == 3 and spans[1][0] >= spans[0][1] - 0.5 and spans[1][0] - spans[0][0] >= 1.0
    expected, _ = run_pooled(Mssa(), long, CONFIG)
    assert sorted(taken) == [0, 1, 2]
    for run in taken.values():
        pd.testing.assert_frame_equal(run.forecasts, expected.assign(model="mssa")[["model", *expected.columns]])


def features_of(returns: pd.DataFrame) -> pd.DataFrame:
    """Two lagged-return features per (ticker, date), and one the models below never read."""
    lagged = returns.groupby("ticker")["log_return"].shift(1)
    return returns[["ticker", "date"]].assign(lag_1=lagged.fillna(0.0), abs_lag_1=lagged.abs().fillna(0.0), unread=1.0)


def test_each_pooled_model_is_sent_the_columns_it_reads_and_gives_the_serial_rows(client):
    # mSSA reads the returns alone and the exogenous SARIMAX two named features: each is sent a panel of those
    # columns, every row of the whole one (so its forecasts are the whole panel's); models that read the same
    # columns share one frame
    long = panel(3, n=600)
    features = features_of(long)
    models = [RandomWalk(), Mssa(), SarimaxExog(exog_names=("lag_1", "abs_lag_1")), Mssa()]
    whole = pooled_panel(long, features)
    mssa, exog, mssa_again = panels_by_model(whole, models[1:])
    assert list(mssa.columns) == ["ticker", "date", "log_return"] and mssa is mssa_again
    assert set(exog.columns) == {"ticker", "date", "log_return", "lag_1", "abs_lag_1"}
    assert len(mssa) == len(exog) == len(whole)
    one = run_panel(models[:3], long, CONFIG, workers=1, features=features)
    two = run_panel(models[:3], long, CONFIG, client=client, features=features)
    assert set(one.forecasts["model"]) == {"random_walk", "mssa", "sarimax_exog"}
    pd.testing.assert_frame_equal(one.forecasts, two.forecasts)
    pd.testing.assert_frame_equal(one.diagnostics, two.diagnostics)


def test_a_scheduler_over_tcp_by_file_and_by_address(serial, tcp_cluster):
    long, one = serial
    address = json.loads(tcp_cluster.read_text())["address"]
    assert address.startswith("tcp://127.0.0.1:")
    by_file = run_panel(models(), long, CONFIG, scheduler=str(tcp_cluster))
    by_address = run_panel(models(), long, CONFIG, scheduler=address)
    pd.testing.assert_frame_equal(one.forecasts, by_file.forecasts)
    pd.testing.assert_frame_equal(one.forecasts, by_address.forecasts)


def test_a_workers_warnings_reach_this_process(client):
    # a constant stretch: the HMM cannot be fitted on the first window, and says so with a warning
    r = arma_returns(n=600, seed=5)
    r.iloc[:320] = 0.0
    long = pd.DataFrame({"ticker": "FLAT", "date": r.index, "log_return": r.to_numpy()})
    config = WalkForwardConfig(horizons=(1,), train_window=300, refit_every=50, embargo=0)
    with pytest.warns(RuntimeWarning, match=r"hmm: fit on .* failed"):
        run = run_panel([GaussianHmm()], long, config, client=client)
    assert run.stats["hmm"].failed >= 1


def test_a_torch_model_trains_in_the_workers_and_gives_the_serial_rows(client):
    from python_models.forecasters.neural import TemporalConvNet

    long = panel(2, n=520)
    config = WalkForwardConfig(horizons=(1, 5), train_window=300, refit_every=110, embargo=0)

    def tcn():
        return TemporalConvNet(lookback=16, channels=4, max_epochs=15, horizons=(1, 5), device="cpu", refit_every=110)

    here = run_panel([tcn()], long, config, workers=1)
    there = run_panel([tcn()], long, config, client=client)
    # the second run's fits trained in the cluster's worker processes (torch in one thread there, as here)
    assert len(here.forecasts) and set(there.forecasts["ticker"]) == {"T0", "T1"}
    pd.testing.assert_frame_equal(here.forecasts, there.forecasts)
    assert here.stats["tcn"].fits == there.stats["tcn"].fits >= 4
