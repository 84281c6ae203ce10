"""Walk-forward over a whole universe: every single-series model on every ticker, and pooled models
(one fit per fold across every ticker) on the panel.

The folds, purge and embargo are those of :mod:`.walk_forward`; :func:`run_panel` spreads the
(model, ticker) runs over a Dask cluster (:mod:`.cluster`) and returns a :class:`PanelRun`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from python_models.evaluation import cluster
from python_models.evaluation.cluster import (
    fan_out,
    put_on_cluster,
    release_freed_memory,
    result_of,
    submit_on_cluster,
)
from python_models.evaluation.walk_forward import (
    DIAGNOSTIC_COLUMNS,
    FORECAST_COLUMNS,
    POOLED,
    FoldFit,
    WalkForwardConfig,
    converged,
    diagnostics_frame,
    finite_forecasts,
    run_walk_forward,
    target_dates,
    walk_forward_folds,
)
from python_models.forecasters.base import Forecaster, PanelForecaster, validate_panel

#: A first forecast origin, as :func:`run_walk_forward` takes it.
Start: TypeAlias = pd.Timestamp | str | None

#: Columns of a pooled model's forecasts before their target dates are attached.
POOLED_COLUMNS = ["ticker", "asof_date", "horizon", "y_pred", "y_lower", "y_upper", "y_std", "confidence"]
#: Columns of a pooled model's feature importances, one row per fit, horizon and feature.
FIT_IMPORTANCE_COLUMNS = ["horizon", "feature", "gain", "splits", "train_start", "train_end"]


@dataclass(frozen=True)
class ModelStats:
    """The work one model did in a :func:`run_panel` call.

    Attributes
    ----------
    fits : int
        Refits made (a pooled model's one fit per fold serves every ticker).
    failed : int
        Windows the model could not be fitted on (their origins get no forecast).
    seconds : float
        Time spent fitting and forecasting, summed over workers.
    """

    fits: int
    failed: int
    seconds: float


@dataclass(frozen=True)
class PanelRun:
    """What :func:`run_panel` returns.

    Attributes
    ----------
    forecasts : pandas.DataFrame
        The columns of :func:`~python_models.evaluation.walk_forward.run_walk_forward` with
        ``model`` and ``ticker`` first.
    stats : dict
        ``model -> ModelStats``, single-series models first, in the order they were given.
    fits : dict
        Each run's last :class:`FoldFit`, keyed by ``(model, ticker)`` (ticker :data:`POOLED`
        for a pooled model).
    importances : pandas.DataFrame or None
        The pooled models' feature importances with a ``model`` column; None when no model has them.
    runs : int
        The (model, ticker) runs and pooled models it ran.
    diagnostics : pandas.DataFrame
        Every fit's diagnostics, ``model`` and ``ticker`` (:data:`POOLED` for a pooled model) then
        :data:`~python_models.evaluation.walk_forward.DIAGNOSTIC_COLUMNS`.
    """

    forecasts: pd.DataFrame
    stats: dict[str, ModelStats]
    fits: dict[tuple[str, str], FoldFit]
    importances: pd.DataFrame | None
    runs: int = 0
    diagnostics: pd.DataFrame = field(default_factory=lambda: empty_diagnostics())

    @classmethod
    def of(cls, results: Sequence[_Run], importances: pd.DataFrame | None, runs: int) -> PanelRun:
        """The run of these workers' results (possibly without forecasts: :meth:`combine` checks)."""
        frames = [r.frame for r in results if len(r.frame)]
        diagnostics = [r.diagnostics for r in results if len(r.diagnostics)]
        return cls(
            forecasts=pd.concat(frames, ignore_index=True) if frames else _no_forecasts(),
            stats=_stats(list(results)),
            fits={r.key: r.last for r in results if r.last is not None},
            importances=importances,
            runs=runs,
            diagnostics=pd.concat(diagnostics, ignore_index=True) if diagnostics else empty_diagnostics(),
        )

    @classmethod
    def combine(cls, parts: Sequence[PanelRun], allow_empty: bool = False) -> PanelRun:
        """One run of several, in their order (runs of different models)."""
        frames = [p.forecasts for p in parts if len(p.forecasts)]
        if not frames and not allow_empty:
            raise ValueError(
                "no ticker has enough history for one walk-forward fold; lower train_window or start earlier"
            )
        importances = [p.importances for p in parts if p.importances is not None]
        diagnostics = [p.diagnostics for p in parts if len(p.diagnostics)]
        return cls(
            forecasts=pd.concat(frames, ignore_index=True) if frames else _no_forecasts(),
            stats={model: stats for p in parts for model, stats in p.stats.items()},
            fits={key: fit for p in parts for key, fit in p.fits.items()},
            importances=pd.concat(importances, ignore_index=True) if importances else None,
            runs=sum(p.runs for p in parts),
            diagnostics=pd.concat(diagnostics, ignore_index=True) if diagnostics else empty_diagnostics(),
        )


def _no_forecasts() -> pd.DataFrame:
    """:attr:`PanelRun.forecasts` without rows."""
    return pd.DataFrame(columns=["model", "ticker", *FORECAST_COLUMNS])


class _Run(NamedTuple):
    """One (model, ticker) walk-forward, or one pooled model's, as a worker returns it."""

    key: tuple[str, str]
    frame: pd.DataFrame
    seconds: float
    failed: int
    last: FoldFit | None
    diagnostics: pd.DataFrame


def run_pooled(
    forecaster: PanelForecaster,
    panel: pd.DataFrame,
    config: WalkForwardConfig,
    start: pd.Timestamp | str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-sample forecasts of a pooled model: one fit per fold across every ticker.

    Folds are laid on the panel's session calendar (every date any ticker has) exactly as
    :func:`walk_forward_folds` lays them on one series: the fit sees the panel rows of its
    training window only, and the forecasts from each origin see rows up to that origin's
    fold end (a model reads no row after the origin it forecasts from; the leakage test
    poisons everything later).

    Returns
    -------
    forecasts : pandas.DataFrame
        The columns of :func:`run_walk_forward` plus ``ticker`` first. ``target_date`` is
        the session ``h`` returns later in that ticker's own series. ``attrs`` as there.
    importances : pandas.DataFrame
        Feature importances per fit (``train_end``, ``horizon``, ``feature``, ``gain``,
        ``splits``); empty for a model without them.
    """
    p = validate_panel(panel)
    forecaster.check_columns(p)
    dates = pd.DatetimeIndex(p["date"].unique())
    first = 0 if start is None else int(dates.searchsorted(pd.Timestamp(start)))
    if forecaster.refit_every:
        config = replace(config, refit_every=forecaster.refit_every)
    # the panel runs in date order: a fold's rows are one slice of it, which pandas does not copy (a
    # boolean selection copied nearly the whole panel for every fold: gigabytes at 500 tickers)
    day = p["date"].to_numpy()
    by_ticker: dict[str, list[pd.DataFrame]] = {}
    importances, failed, last, diagnostics = [], 0, None, []
    for fold in walk_forward_folds(len(dates), first, config):
        lo, hi = dates[fold.train_start], dates[fold.train_end - 1]
        train = p.iloc[day.searchsorted(lo.to_datetime64(), "left") : day.searchsorted(hi.to_datetime64(), "right")]
        try:
            fit = forecaster.fit(train)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            warnings.warn(
                f"{forecaster.name}: fit on {lo.date()}..{hi.date()} failed ({exc})", RuntimeWarning, stacklevel=2
            )
            failed += 1
            continue
        last = FoldFit(fit, lo, hi, converged(fit))
        diagnostics.append((lo, hi, fit.diagnostics))
        seen = p.iloc[: day.searchsorted(dates[fold.test_end - 1].to_datetime64(), "right")]
        for ticker, fc in fit.forecast(seen, dates[fold.test_start : fold.test_end], config.horizons).items():
            frame = fc.to_frame()
            frame.insert(0, "ticker", ticker)
            frame["train_start"], frame["train_end"] = lo, hi
            frame["converged"] = last.converged
            by_ticker.setdefault(ticker, []).append(frame)
        if fit.importances is not None:
            importances.append(fit.importances.assign(train_start=lo, train_end=hi))
    # by ticker, then fold: the folds' origins follow each other, so the rows are already in the order
    # they are kept in and the sort copies nothing (pandas copies on write); a copy of 500 tickers'
    # forecasts is about a gigabyte
    frames = [frame for ticker in sorted(by_ticker) for frame in by_ticker[ticker]]
    del by_ticker
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=POOLED_COLUMNS)
    del frames
    out = finite_forecasts(out, forecaster.name)
    out = out.sort_values(["ticker", "asof_date", "horizon"], kind="stable").reset_index(drop=True)
    out["target_date"] = _own_target_dates(out, p)
    out.attrs["failed_fits"] = failed
    out.attrs["last_fit"] = last
    out.attrs["fit_diagnostics"] = diagnostics_frame(diagnostics)
    imp = pd.concat(importances, ignore_index=True) if importances else pd.DataFrame(columns=FIT_IMPORTANCE_COLUMNS)
    return out, imp


def _own_target_dates(forecasts: pd.DataFrame, panel: pd.DataFrame) -> np.ndarray:
    """Each row's target date in its ticker's own series (the sessions it has a return for)."""
    observed = panel["log_return"].notna().to_numpy()
    # each ticker's sessions, in the panel's date order, without copying the panel's other columns
    day = panel["date"].to_numpy()[observed]
    own_rows = pd.Series(day).groupby(panel["ticker"].to_numpy()[observed]).indices
    target = np.full(len(forecasts), np.datetime64("NaT"), dtype="datetime64[ns]")
    for ticker, rows in forecasts.groupby("ticker", sort=False).indices.items():
        own = pd.DatetimeIndex(day[own_rows.get(ticker, np.empty(0, dtype=np.intp))])
        target[rows] = target_dates(own, forecasts["asof_date"].iloc[rows], forecasts["horizon"].iloc[rows])
    return target


def pooled_panel(returns: pd.DataFrame, features: pd.DataFrame | None) -> pd.DataFrame:
    """The panel pooled models see: ``features`` rows (every ticker and session) with
    ``log_return`` joined on (NaN for a session without one), or the returns alone."""
    base = returns[["ticker", "date", "log_return"]].assign(date=lambda f: pd.to_datetime(f["date"]))
    if features is None:
        return base
    if not {"ticker", "date"} <= set(features.columns):
        raise ValueError("features frame needs columns ticker and date")
    feats = features.drop(columns=["log_return"], errors="ignore").assign(date=lambda f: pd.to_datetime(f["date"]))
    feats = feats[feats["ticker"].isin(base["ticker"].unique())]
    return feats.merge(base, on=["ticker", "date"], how="left")


def run_panel(
    forecasters: Sequence[Forecaster | PanelForecaster],
    returns: pd.DataFrame,
    config: WalkForwardConfig,
    start: pd.Timestamp | str | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    features: pd.DataFrame | None = None,
    scheduler: str | None = None,
    client: Any = None,
    allow_empty: bool = False,
) -> PanelRun:
    """Walk-forward forecasts of every model on every ticker.

    Parameters
    ----------
    forecasters : sequence of Forecaster or PanelForecaster
        Single-series models run per (model, ticker); pooled models run once each over
        the whole panel (:func:`run_pooled`).
    returns : pandas.DataFrame
        Long frame with columns ``ticker``, ``date``, ``log_return``.
    config, start
        As in :func:`run_walk_forward`.
    workers : int
        Worker processes of the local Dask cluster the (model, ticker) pairs are spread over;
        1 (and no scheduler) runs them in this process. Results do not depend on it.
    progress : callable, optional
        Called as ``progress(done, total)`` after each (model, ticker) pair or pooled model.
    features : pandas.DataFrame, optional
        Long frame (``ticker``, ``date``, feature columns) for pooled models that read
        features: one row per ticker and session, the returns joined onto it.
    scheduler : str, optional
        A Dask scheduler address or scheduler file to run the (model, ticker) pairs on instead
        of a local cluster (:func:`~python_models.evaluation.cluster.dask_client`).
    client : distributed.Client, optional
        An open Dask client to use instead of either.
    allow_empty : bool
        Return a run without forecasts where no ticker has history enough for a fold (a batch of a
        larger universe may have none), instead of raising ValueError.

    Returns
    -------
    PanelRun
        The forecasts, the work per model, each run's last fit and the feature importances.
    """
    missing = {"ticker", "date", "log_return"} - set(returns.columns)
    if missing:
        raise ValueError(f"returns frame lacks columns {sorted(missing)}")
    pooled = [f for f in forecasters if isinstance(f, PanelForecaster)]
    single = [f for f in forecasters if not isinstance(f, PanelForecaster)]
    tasks = [(f, ticker, series, config, start) for ticker, series in series_by_ticker(returns).items() for f in single]
    total = len(tasks) + len(pooled)
    if client is None and (scheduler or (workers > 1 and total >= 2)):
        with cluster.dask_client(scheduler, workers) as own:  # the module's: tests record the clusters started
            return run_panel(
                forecasters,
                returns,
                config,
                start,
                progress=progress,
                features=features,
                client=own,
                allow_empty=allow_empty,
            )

    def single_done(done: int, _: int) -> None:
        if progress:
            progress(done, total)

    # the pooled models first: each is one long task, which should not be the last to start
    started = PooledRuns(pooled, returns, config, start, features, client)
    names = [f"walk-forward-{f.name}-{ticker}" for f, ticker, *_ in tasks]
    try:
        results: list[_Run] = fan_out(_one, tasks, names, client=client, progress=single_done)
    except BaseException:
        started.cancel()  # the caller's cluster would otherwise go on fitting them for nothing
        raise
    pooled_runs: dict[int, PanelRun] = {}
    for i, run in started.runs():
        pooled_runs[i] = run
        if progress:
            progress(len(tasks) + len(pooled_runs), total)
    # in the order the models were given, whichever ended first
    runs = [PanelRun.of(results, None, len(tasks)), *(pooled_runs[i] for i in sorted(pooled_runs))]
    return PanelRun.combine(runs, allow_empty=allow_empty)


class PooledRuns:
    """The pooled models' walk-forwards: with a Dask client, each model one task on its cluster (the panels sent
    there at once), so that this process only takes their results instead of fitting beside the workers on
    the same cores, ``at_once`` of them running at a time (default: the cluster's workers but one, at least one) until
    :meth:`runs` is read (the caller's other work is done), then as many as the cluster has workers; the next
    starts when one's result is taken. Without a client, fitted here, one after the other, when :meth:`runs`
    is read.

    ``then(i, run)``, where given, is applied to each model's :class:`PanelRun` (``i`` its place among the models
    given), and :meth:`finished` and :meth:`runs` yield what it returns instead of the run. With
    ``then_on_workers`` it runs in the model's task, on the worker that made the rows, and only what it returns
    travels: the caller's way to write a model's rows where they are (a worker that shares the caller's disk)
    instead of receiving gigabytes of them. ``then`` must be picklable there and give the same result wherever
    it runs; a task retried after its worker died runs it again."""

    def __init__(
        self,
        pooled: Sequence[PanelForecaster],
        returns: pd.DataFrame,
        config: WalkForwardConfig,
        start: Start,
        features: pd.DataFrame | None,
        client: Any = None,
        at_once: int | None = None,
        then: Callable[[int, PanelRun], Any] | None = None,
        then_on_workers: bool = False,
    ) -> None:
        self.pooled, self.config, self.start = pooled, config, start
        self._then, self._then_on_workers = then, then_on_workers and then is not None
        self.futures: list[Any] | None = None
        self._waiting: list[Any] = []  # the futures whose runs have not been taken
        self._queue: list[tuple[int, Any, str]] = []  # (place, task, name) of the models not started yet
        self._client: Any = None
        self._at_once = self._workers = 1
        self._place: dict[Any, int] = {}
        self._shown: dict[Any, Any] = {}
        # the inputs are kept only to fit here later: sent to a cluster, they are the caller's to drop
        self._inputs: tuple[pd.DataFrame, pd.DataFrame | None] | None = (returns, features)
        if client is not None and pooled:
            from distributed import wait

            panels = panels_by_model(self._panel(), pooled)
            self._inputs = None
            sent: dict[int, Any] = {}  # one future per distinct frame
            for frame in panels:
                if id(frame) not in sent:
                    sent[id(frame)] = put_on_cluster(client, frame, "pooled-panel")
            # the panels are on the cluster before this goes on: until then the client's messages still hold
            # them, and the caller, which drops its copies next, would free nothing
            wait(list(sent.values()))
            held = [sent[id(frame)] for frame in panels]
            del panels, sent
            kept_there = then if self._then_on_workers else None
            pairs = enumerate(zip(pooled, held, strict=True))
            tasks = [((f, panel, config, start), i, kept_there) for i, (f, panel) in pairs]
            # the panels are needed only by those tasks: once they have them (the ones not started yet: the
            # queue), only they keep them alive (a worker that dies mid-run gets its panel computed again
            # from the task the scheduler keeps)
            del held
            self._client, self.futures = client, []
            self._queue = [(i, task, f"walk-forward-{task[0][0].name}") for i, task in enumerate(tasks)]
            # A pooled task holds its panel, its model and, at the end, its whole history of forecasts: at 500
            # tickers some gigabytes (docs/scaling.md). All at once, they took every worker and their memory
            # added up; so at most all workers but one run them while there are single-series tasks (the next
            # starts when this process takes one's rows, between ticker batches), every worker after them.
            self._workers = len(client.scheduler_info()["workers"])
            self._at_once = max(1, at_once if at_once is not None else self._workers - 1)
            self._submit()

    def _panel(self) -> pd.DataFrame:
        assert self._inputs is not None
        returns, features = self._inputs
        needed = any(f.needs_features for f in self.pooled)
        return pooled_panel(returns, features if needed else None)

    def _submit(self) -> None:
        """Start the next models, up to ``at_once`` running."""
        assert self.futures is not None
        while self._queue and len(self._waiting) < self._at_once:
            place, task, name = self._queue.pop(0)
            (future,) = submit_on_cluster(self._client, _pooled_task_then, [task], [name])
            self._place[future.key] = place
            self._waiting.append(future)
            self.futures.append(future)

    def cancel(self) -> None:
        """Stop the cluster's tasks not yet done, and start no other."""
        self._queue.clear()
        for future in self._waiting:
            future.cancel()

    def finished(self) -> Iterator[tuple[int, Any]]:
        """``(i, run)``: the :class:`PanelRun` of each model whose task has ended since the last call, without
        waiting, ``i`` its place among the models given.

        A caller that has other work between calls (the single-series batches) takes each model's rows
        off the cluster as soon as they are there: held in a worker until the end of the step, the four
        default pooled models' forecasts of 500 tickers would be gigabytes. Without a client the models
        run only in :meth:`runs`."""
        for future in [f for f in self._waiting if f.done()]:
            yield self._take(future)

    def runs(self) -> Iterator[tuple[int, Any]]:
        """``(i, run)`` for each remaining model, as each ends (``i`` its place among the models given)."""
        if self.futures is not None:
            from distributed import wait

            self._at_once = max(self._at_once, self._workers)  # the single-series tasks are done: every worker
            self._submit()
            while self._waiting:
                done = wait(list(self._waiting), return_when="FIRST_COMPLETED").done
                for future in [f for f in self._waiting if f in done]:
                    yield self._take(future)
        elif self.pooled:
            panel = self._panel()
            for i, forecaster in enumerate(self.pooled):
                run, importances = _pooled_task((forecaster, panel, self.config, self.start))
                yield i, self._handed(i, PanelRun.of([run], importances, 1))

    def _take(self, future: Any) -> tuple[int, Any]:
        """A task's place and run (or what ``then`` made of it), waiting for it; its worker drops the rows once
        they are here."""
        result = result_of(future, self._shown)
        self._waiting.remove(future)
        future.release()
        self._submit()  # the next model starts while this one's rows are handed on
        i = self._place[future.key]
        return i, result if self._then_on_workers else self._handed(i, PanelRun.of([result[0]], result[1], 1))

    def _handed(self, i: int, run: PanelRun) -> Any:
        return self._then(i, run) if self._then is not None else run


def panels_by_model(panel: pd.DataFrame, pooled: Sequence[PanelForecaster]) -> list[pd.DataFrame]:
    """The panel each pooled model is sent: every row of ``panel``, with only the feature columns the model
    reads (:meth:`PanelForecaster.panel_columns`), those it reads only in single precision as float32
    (:meth:`PanelForecaster.single_precision_columns`), so its rows and forecasts are those of the whole panel.
    Models that read the same columns share one frame. At 500 tickers the whole panel is over a gigabyte;
    XGBoost reads most of it, in float32, and mSSA, MSSA-RL and the exogenous SARIMAX a few columns."""
    base = ["ticker", "date", "log_return"]
    available = [c for c in panel.columns if c not in base]
    shared: dict[tuple[tuple[str, ...], tuple[str, ...]], pd.DataFrame] = {}
    out = []
    for forecaster in pooled:
        named = set(forecaster.panel_columns(available))
        columns = tuple(c for c in panel.columns if c in base or c in named)
        own = panel if len(columns) == len(panel.columns) else panel[list(columns)]
        single = tuple(forecaster.single_precision_columns(own))
        if (columns, single) not in shared:
            shared[(columns, single)] = own.astype(dict.fromkeys(single, np.float32)) if single else own
        out.append(shared[(columns, single)])
    return out


def empty_diagnostics() -> pd.DataFrame:
    """:attr:`PanelRun.diagnostics` without rows."""
    return (
        diagnostics_frame([])
        .reindex(columns=["model", "ticker", *DIAGNOSTIC_COLUMNS])
        .astype({"model": "object", "ticker": "object"})
    )


def _keyed(diagnostics: pd.DataFrame, model: str, ticker: str) -> pd.DataFrame:
    """A run's fit diagnostics with its ``model`` and ``ticker`` first."""
    return diagnostics.assign(model=model, ticker=ticker)[["model", "ticker", *DIAGNOSTIC_COLUMNS]]


def series_by_ticker(returns: pd.DataFrame) -> dict[str, pd.Series]:
    """Each ticker's log returns as a date-indexed series, tickers in sorted order."""
    return {
        ticker: pd.Series(group["log_return"].to_numpy(float), index=pd.DatetimeIndex(group["date"]), name=ticker)
        for ticker, group in returns.sort_values(["ticker", "date"]).groupby("ticker", sort=True)
    }


def _stats(results: list[_Run]) -> dict[str, ModelStats]:
    """Refits, failed windows and seconds per model, over the runs that gave forecasts."""
    totals: dict[str, ModelStats] = {}
    for run in results:
        if len(run.frame):
            model = run.frame["model"].iloc[0]
            seen = totals.get(model, ModelStats(0, 0, 0.0))
            fits = int(run.frame["train_end"].nunique())  # a pooled model: one fit for all tickers
            totals[model] = ModelStats(seen.fits + fits, seen.failed + run.failed, seen.seconds + run.seconds)
    return totals


def _one(args: tuple[Forecaster, str, pd.Series, WalkForwardConfig, Start]) -> _Run:
    forecaster, ticker, returns, config, start = args
    started = time.perf_counter()
    # Small matrices: multithreaded BLAS only spins (statsmodels' fits run ~4x slower with it).
    with threadpool_limits(limits=1):
        out = run_walk_forward(forecaster, returns, config, start)
    failed, last = int(out.attrs.get("failed_fits", 0)), out.attrs.get("last_fit")
    diagnostics = _keyed(out.attrs.get("fit_diagnostics", diagnostics_frame([])), forecaster.name, ticker)
    out.attrs = {}
    out.insert(0, "ticker", ticker)
    out.insert(0, "model", forecaster.name)
    return _Run((forecaster.name, ticker), out, time.perf_counter() - started, failed, last, diagnostics)


_PooledTask: TypeAlias = tuple[PanelForecaster, pd.DataFrame, WalkForwardConfig, Start]


def _pooled_task_then(args: tuple[_PooledTask, int, Callable[[int, PanelRun], Any] | None]) -> Any:
    """:func:`_pooled_task`, and ``then(i, run)`` applied to its run where given (:class:`PooledRuns`)."""
    task, i, then = args
    run, importances = _pooled_task(task)
    if then is None:
        return run, importances
    kept = then(i, PanelRun.of([run], importances, 1))
    del run, importances
    release_freed_memory()  # the rows, and the buffers they were written through
    return kept


def _pooled_task(args: _PooledTask) -> tuple[_Run, pd.DataFrame | None]:
    """One pooled model's walk-forward and its importances (``model`` added; None without any)."""
    forecaster, panel, config, start = args
    started = time.perf_counter()
    with threadpool_limits(limits=1):  # as the single-series runs: one core each, the same sums anywhere
        out, importances = run_pooled(forecaster, panel, config, start)
    failed, last = int(out.attrs.get("failed_fits", 0)), out.attrs.get("last_fit")
    diagnostics = _keyed(out.attrs.get("fit_diagnostics", diagnostics_frame([])), forecaster.name, POOLED)
    out.attrs = {}
    out.insert(0, "model", forecaster.name)
    run = _Run((forecaster.name, POOLED), out, time.perf_counter() - started, failed, last, diagnostics)
    # the walk-forward's copies on the way to these rows (the folds' frames, their concatenation) are freed but
    # kept by glibc, gigabytes at 500 tickers, while the worker holds the rows until the run takes them
    release_freed_memory()
    return run, importances.assign(model=forecaster.name) if len(importances) else None
