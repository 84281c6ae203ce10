"""Walk-forward validation: rolling training windows, a refit cadence, purge and embargo.

Fold ``k`` forecasts from origins ``[s_k, s_k + refit_every)``. Its model is fitted on the
``train_window`` returns that end ``purge + embargo`` sessions before ``s_k``; between
refits the parameters stay fixed while each origin's forecast sees returns up to that
origin's close and no later. ``purge`` defaults to the longest horizon, so no training
label can overlap a test window even for models trained on multi-session targets.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from python_models.forecasters.base import (
    Forecaster,
    PanelForecaster,
    validate_horizons,
    validate_panel,
    validate_returns,
)

#: The ticker a pooled model's fit is stored under (one fit for every ticker).
POOLED = "*"

#: Forecast and target horizons in sessions; dbt receives them as var target_horizons.
DEFAULT_HORIZONS: tuple[int, ...] = (1, 5, 21, 63)


@dataclass(frozen=True)
class WalkForwardConfig:
    """Settings of the walk-forward harness.

    Parameters
    ----------
    horizons : tuple of int
        Forecast horizons in sessions.
    train_window : int
        Sessions in each (rolling) training window.
    refit_every : int
        Sessions between refits; origins in between reuse the latest fit.
    purge : int or None
        Sessions dropped between the end of training and the first test origin;
        ``None`` means the longest horizon.
    embargo : int
        Further sessions dropped after the purge.
    expanding : bool
        Train on all history up to the purge instead of a rolling window.
    """

    horizons: tuple[int, ...] = DEFAULT_HORIZONS
    train_window: int = 756
    refit_every: int = 63
    purge: int | None = None
    embargo: int = 5
    expanding: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizons", validate_horizons(self.horizons))
        if self.train_window < 100:
            raise ValueError(f"train_window must be at least 100 sessions, got {self.train_window}")
        if self.refit_every < 1:
            raise ValueError(f"refit_every must be positive, got {self.refit_every}")
        if self.embargo < 0 or (self.purge is not None and self.purge < max(self.horizons)):
            raise ValueError("purge must be >= the longest horizon and embargo >= 0")

    @property
    def gap(self) -> int:
        """Sessions between the last training return and the first test origin."""
        return (max(self.horizons) if self.purge is None else self.purge) + self.embargo


@dataclass(frozen=True)
class Fold:
    """Positions (into the return series) of one walk-forward fold; ends are exclusive."""

    train_start: int
    train_end: int
    test_start: int
    test_end: int


@dataclass(frozen=True)
class FoldFit:
    """A fitted model and the sample it was fitted on (the harness keeps each run's last one:
    the fit the daily refresh forecasts new origins with)."""

    fit: object  # FitResult or PanelFitResult
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    converged: bool


def walk_forward_folds(n: int, first_test: int, config: WalkForwardConfig) -> Iterator[Fold]:
    """Yield folds covering test origins ``first_test .. n - 1``.

    The first test origin is moved later if the history before it cannot hold a full
    training window plus the gap.
    """
    start = max(first_test, config.train_window + config.gap)
    for s in range(start, n, config.refit_every):
        train_end = s - config.gap
        train_start = 0 if config.expanding else train_end - config.train_window
        yield Fold(train_start, train_end, s, min(s + config.refit_every, n))


def run_walk_forward(
    forecaster: Forecaster,
    returns: pd.Series,
    config: WalkForwardConfig,
    start: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Out-of-sample forecasts of one model on one return series.

    Parameters
    ----------
    forecaster : Forecaster
        Model specification, fitted afresh on every fold (every ``forecaster.refit_every``
        sessions when it sets one, else ``config.refit_every``).
    returns : pandas.Series
        Daily log returns indexed by session date.
    config : WalkForwardConfig
        Windows, cadence, purge and embargo.
    start : date-like, optional
        First forecast origin wanted (earlier if omitted: as soon as a window fits).

    Returns
    -------
    pandas.DataFrame
        One row per (asof_date, horizon): ``y_pred``, ``y_lower``, ``y_upper``,
        ``y_std``, ``confidence`` (see :meth:`ReturnForecast.to_frame`),
        ``target_date`` (the session ``h`` rows later, NaT while it lies beyond the
        data), ``train_start``/``train_end`` (the fit's sample) and ``converged``.
    """
    r = validate_returns(returns)
    dates = r.index
    first = 0 if start is None else int(dates.searchsorted(pd.Timestamp(start)))
    if getattr(forecaster, "refit_every", None):  # a model may refit less often than the harness default
        config = replace(config, refit_every=forecaster.refit_every)
    frames = []
    folds = list(walk_forward_folds(len(r), first, config))
    windows = [r.iloc[fold.train_start : fold.train_end] for fold in folds]
    # models with a batched fit (SSA) estimate every fold at once; the fits are the same
    fits = None
    if hasattr(forecaster, "fit_many"):
        try:
            fits = forecaster.fit_many(windows)
        except (ValueError, RuntimeError, np.linalg.LinAlgError):
            fits = None  # one bad window: fit them one by one below
    if fits is None:
        fits = map(_fit_or_none(forecaster), windows)
    failed, last = 0, None
    for fold, fit in zip(folds, fits, strict=True):
        if fit is None:  # the model cannot be estimated on this window: no forecasts for its origins
            failed += 1
            continue
        converged = bool(fit.diagnostics.get("converged", 1.0))
        last = FoldFit(fit, dates[fold.train_start], dates[fold.train_end - 1], converged)
        origins = dates[fold.test_start : fold.test_end]
        # from the fit's own sample on: a model's filter (ARMA state, GARCH variance, HMM regime) starts
        # where its estimation did, so a forecast's cost and value do not depend on older history
        frame = fit.forecast(r.iloc[fold.train_start : fold.test_end], origins, config.horizons).to_frame()
        frame["train_start"] = dates[fold.train_start]
        frame["train_end"] = dates[fold.train_end - 1]
        frame["converged"] = converged
        frames.append(frame)
    if not frames:
        return pd.DataFrame(
            columns=[
                "asof_date",
                "horizon",
                "y_pred",
                "y_lower",
                "y_upper",
                "y_std",
                "confidence",
                "target_date",
                "train_start",
                "train_end",
                "converged",
            ]
        )
    out = pd.concat(frames, ignore_index=True)
    out.attrs["failed_fits"] = failed
    out.attrs["last_fit"] = last
    out["target_date"] = _target_dates(dates, out["asof_date"], out["horizon"])
    return out


def _target_dates(dates: pd.DatetimeIndex, asof: pd.Series, horizon: pd.Series) -> np.ndarray:
    """The session ``horizon`` rows of ``dates`` after each ``asof`` (NaT beyond the data)."""
    pos = dates.get_indexer(asof) + horizon.to_numpy()
    target = np.full(len(asof), np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = pos < len(dates)
    target[ok] = dates.to_numpy()[pos[ok]]
    return target


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
        the session ``h`` returns later in that ticker's own series.
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
    day = p["date"].to_numpy()
    frames, importances, failed, last = [], [], 0, None
    for fold in walk_forward_folds(len(dates), first, config):
        lo, hi = dates[fold.train_start], dates[fold.train_end - 1]
        train = p[(day >= lo.to_datetime64()) & (day <= hi.to_datetime64())]
        try:
            fit = forecaster.fit(train)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            warnings.warn(
                f"{forecaster.name}: fit on {lo.date()}..{hi.date()} failed ({exc})", RuntimeWarning, stacklevel=2
            )
            failed += 1
            continue
        last = FoldFit(fit, lo, hi, bool(fit.diagnostics.get("converged", 1.0)))
        seen = p[day <= dates[fold.test_end - 1].to_datetime64()]
        for ticker, fc in fit.forecast(seen, dates[fold.test_start : fold.test_end], config.horizons).items():
            frame = fc.to_frame()
            frame.insert(0, "ticker", ticker)
            frame["train_start"], frame["train_end"] = lo, hi
            frame["converged"] = bool(fit.diagnostics.get("converged", 1.0))
            frames.append(frame)
        if fit.importances is not None:
            importances.append(fit.importances.assign(train_start=lo, train_end=hi))
    columns = ["ticker", "asof_date", "horizon", "y_pred", "y_lower", "y_upper", "y_std", "confidence"]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    out = out[np.isfinite(out["y_pred"].to_numpy(float)) & np.isfinite(out["y_std"].to_numpy(float))]
    out = out.sort_values(["ticker", "asof_date", "horizon"], kind="stable").reset_index(drop=True)
    observed = p[p["log_return"].notna()]
    target = np.full(len(out), np.datetime64("NaT"), dtype="datetime64[ns]")
    for ticker, rows in out.groupby("ticker", sort=False).indices.items():
        own = pd.DatetimeIndex(observed.loc[observed["ticker"] == ticker, "date"])
        target[rows] = _target_dates(own, out["asof_date"].iloc[rows], out["horizon"].iloc[rows])
    out["target_date"] = target
    out.attrs["failed_fits"] = failed
    out.attrs["last_fit"] = last
    imp = (
        pd.concat(importances, ignore_index=True)
        if importances
        else pd.DataFrame(columns=["horizon", "feature", "gain", "splits", "train_start", "train_end"])
    )
    return out, imp


def _fit_or_none(forecaster: Forecaster) -> Callable[[pd.Series], object]:
    """``forecaster.fit`` that returns None, with a warning, when a window cannot be fitted
    (a constant stretch, a degenerate likelihood): one bad window must not stop a panel."""

    def fit(window: pd.Series):
        try:
            return forecaster.fit(window)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
            warnings.warn(
                f"{forecaster.name}: fit on {window.index[0].date()}..{window.index[-1].date()} failed ({exc}); "
                "its test origins get no forecast",
                RuntimeWarning,
                stacklevel=2,
            )
            return None

    return fit


def _one(args: tuple) -> tuple[pd.DataFrame, float, int]:
    forecaster, ticker, returns, config, start = args
    started = time.perf_counter()
    # Small matrices: multithreaded BLAS only spins (statsmodels' fits run ~4x slower with it).
    with threadpool_limits(limits=1):
        out = run_walk_forward(forecaster, returns, config, start)
    failed, last = int(out.attrs.get("failed_fits", 0)), out.attrs.get("last_fit")
    out.attrs = {}
    out.insert(0, "ticker", ticker)
    out.insert(0, "model", forecaster.name)
    return out, time.perf_counter() - started, failed, last


def _pooled_one(forecaster: PanelForecaster, panel: pd.DataFrame, config, start) -> tuple:
    started = time.perf_counter()
    out, importances = run_pooled(forecaster, panel, config, start)
    failed, last = int(out.attrs.get("failed_fits", 0)), out.attrs.get("last_fit")
    out.attrs = {}
    out.insert(0, "model", forecaster.name)
    return out, time.perf_counter() - started, failed, importances, last


def run_panel(
    forecasters: Sequence[Forecaster | PanelForecaster],
    returns: pd.DataFrame,
    config: WalkForwardConfig,
    start: pd.Timestamp | str | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    stats: dict | None = None,
    features: pd.DataFrame | None = None,
    importances: list | None = None,
    fits: dict | None = None,
) -> pd.DataFrame:
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
        Processes to spread (model, ticker) pairs over; 1 runs in this process.
        Results do not depend on it.
    progress : callable, optional
        Called as ``progress(done, total)`` after each (model, ticker) pair or pooled model.
    stats : dict, optional
        Filled with ``{model: {"fits": n, "failed": k, "seconds": s}}``: refits made, windows
        the model could not be fitted on (their origins get no forecast), and the time spent
        fitting and forecasting (summed over workers).
    features : pandas.DataFrame, optional
        Long frame (``ticker``, ``date``, feature columns) for pooled models that read
        features: one row per ticker and session, the returns joined onto it.
    importances : list, optional
        Pooled models' feature importances (frames with a ``model`` column) are appended to it.
    fits : dict, optional
        Filled with each run's last :class:`FoldFit`, keyed by ``(model, ticker)`` (ticker
        :data:`POOLED` for a pooled model).
    """
    missing = {"ticker", "date", "log_return"} - set(returns.columns)
    if missing:
        raise ValueError(f"returns frame lacks columns {sorted(missing)}")
    pooled = [f for f in forecasters if isinstance(f, PanelForecaster)]
    single = [f for f in forecasters if not isinstance(f, PanelForecaster)]
    tasks, keys = [], []
    for ticker, group in returns.sort_values(["ticker", "date"]).groupby("ticker", sort=True):
        series = pd.Series(group["log_return"].to_numpy(float), index=pd.DatetimeIndex(group["date"]), name=ticker)
        tasks += [(f, ticker, series, config, start) for f in single]
        keys += [(f.name, ticker) for f in single]
    total = len(tasks) + len(pooled)
    results = []
    if workers > 1 and len(tasks) > 1:
        import multiprocessing as mp

        # spawn, not fork: the parent may run threads (Dagster, the CLI watcher) whose locks a fork would copy.
        with mp.get_context("spawn").Pool(processes=workers) as pool:
            for result in pool.imap(_one, tasks, chunksize=1):
                results.append(result)
                if progress:
                    progress(len(results), total)
    else:
        for task in tasks:
            results.append(_one(task))
            if progress:
                progress(len(results), total)
    if pooled:
        panel = pooled_panel(returns, features if any(f.needs_features for f in pooled) else None)
        for forecaster in pooled:
            frame, seconds, failed, imp, last = _pooled_one(forecaster, panel, config, start)
            results.append((frame, seconds, failed, last))
            keys.append((forecaster.name, POOLED))
            if importances is not None and len(imp):
                importances.append(imp.assign(model=forecaster.name))
            if progress:
                progress(len(results), total)
    if fits is not None:
        fits.update({key: r[3] for key, r in zip(keys, results, strict=True) if r[3] is not None})
    if stats is not None:
        for frame, seconds, failed, _ in results:
            if len(frame):
                entry = stats.setdefault(frame["model"].iloc[0], {"fits": 0, "failed": 0, "seconds": 0.0})
                entry["fits"] += int(frame["train_end"].nunique())  # a pooled model: one fit for all tickers
                entry["failed"] += failed
                entry["seconds"] += seconds
    frames = [r[0] for r in results if len(r[0])]
    if not frames:
        raise ValueError("no ticker has enough history for one walk-forward fold; lower train_window or start earlier")
    return pd.concat(frames, ignore_index=True)


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


def forecast_from_fits(
    fits: dict[tuple[str, str], FoldFit],
    returns: pd.DataFrame,
    after: dict[tuple[str, str], pd.Timestamp],
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Forecasts from the origins after ``after[(model, ticker)]`` with stored fits, refitting nothing.

    What the daily refresh runs: each stored fit (:class:`FoldFit`, keyed as
    :func:`run_panel` keys them) forecasts the sessions its run has not forecast yet, each
    from the returns of the fit's sample start up to that origin (so a refresh reads a bounded
    history, however long the series). While those origins lie in the fold the fit was made
    for, the rows are the walk-forward's own.

    Parameters
    ----------
    fits : dict
        ``(model, ticker) -> FoldFit``; ticker :data:`POOLED` for a pooled model.
    returns : pandas.DataFrame
        Long frame (``ticker``, ``date``, ``log_return``) covering each fit's sample and the
        new origins.
    after : dict
        ``(model, ticker) -> last origin already forecast``; a pooled model's key carries
        the last origin it forecast for any ticker.
    horizons : sequence of int
    features : pandas.DataFrame, optional
        The pooled models' feature rows, as :func:`run_panel` takes them.

    Returns
    -------
    pandas.DataFrame
        :func:`run_panel`'s columns (``model`` and ``ticker`` first).
    """
    frames = []
    series = {
        ticker: pd.Series(g["log_return"].to_numpy(float), index=pd.DatetimeIndex(g["date"]))
        for ticker, g in returns.sort_values(["ticker", "date"]).groupby("ticker", sort=True)
    }
    panel = None
    for (model, ticker), stored in sorted(fits.items()):
        if (model, ticker) not in after:  # never walked forward: nothing to extend
            continue
        last = pd.Timestamp(after[(model, ticker)])
        if ticker != POOLED:
            r = series.get(ticker)
            if r is None:
                continue
            origins = r.index[r.index > last]
            if origins.empty:
                continue
            # from the fit's sample on, as run_walk_forward forecasts: the same rows
            frame = stored.fit.forecast(r[r.index >= stored.train_start], origins, horizons).to_frame()
            frame.insert(0, "ticker", ticker)
            frame["target_date"] = _target_dates(r.index, frame["asof_date"], frame["horizon"])
            parts = [frame]
        else:
            if panel is None:
                panel = validate_panel(pooled_panel(returns, features))
            dates = pd.DatetimeIndex(panel["date"].unique())
            origins = dates[dates > last]
            if origins.empty:
                continue
            parts = []
            for name, fc in stored.fit.forecast(panel, origins, horizons).items():
                frame = fc.to_frame()
                frame.insert(0, "ticker", name)
                frame["target_date"] = _target_dates(series[name].index, frame["asof_date"], frame["horizon"])
                finite = np.isfinite(frame["y_pred"].to_numpy(float)) & np.isfinite(frame["y_std"].to_numpy(float))
                parts.append(frame[finite])
        for frame in parts:
            frame.insert(0, "model", model)
            frame["train_start"], frame["train_end"], frame["converged"] = (
                stored.train_start,
                stored.train_end,
                stored.converged,
            )
            frames.append(frame)
    columns = ["model", "ticker", "asof_date", "horizon", "y_pred", "y_lower", "y_upper", "y_std", "confidence"]
    if not frames:
        return pd.DataFrame(columns=[*columns, "target_date", "train_start", "train_end", "converged"])
    return pd.concat(frames, ignore_index=True)


def refit_latest(
    forecasters: Sequence[Forecaster | PanelForecaster],
    returns: pd.DataFrame,
    config: WalkForwardConfig,
    features: pd.DataFrame | None = None,
) -> dict[tuple[str, str], FoldFit]:
    """Fit every model on the latest window, as the next walk-forward fold would: the
    ``train_window`` sessions ending ``config.gap`` sessions before the last one (purge and
    embargo kept, so the fit's labels cannot overlap the origins it will forecast from).

    A model that cannot be fitted on a window is left out (with a warning): its stored fit
    stays current. Keys as :func:`run_panel`'s ``fits``.
    """
    out: dict[tuple[str, str], FoldFit] = {}

    def window(n: int) -> tuple[int, int] | None:
        end = n - config.gap
        start = 0 if config.expanding else end - config.train_window
        return (start, end) if start >= 0 and end > start else None

    for ticker, group in returns.sort_values(["ticker", "date"]).groupby("ticker", sort=True):
        r = pd.Series(group["log_return"].to_numpy(float), index=pd.DatetimeIndex(group["date"]))
        bounds = window(len(r))
        if bounds is None:
            continue
        sample = r.iloc[bounds[0] : bounds[1]]
        for forecaster in forecasters:
            if isinstance(forecaster, PanelForecaster):
                continue
            with threadpool_limits(limits=1):
                fit = _fit_or_none(forecaster)(sample)
            if fit is not None:
                out[(forecaster.name, ticker)] = FoldFit(
                    fit, sample.index[0], sample.index[-1], bool(fit.diagnostics.get("converged", 1.0))
                )
    pooled = [f for f in forecasters if isinstance(f, PanelForecaster)]
    if pooled:
        panel = validate_panel(pooled_panel(returns, features if any(f.needs_features for f in pooled) else None))
        dates = pd.DatetimeIndex(panel["date"].unique())
        bounds = window(len(dates))
        if bounds is not None:
            lo, hi = dates[bounds[0]], dates[bounds[1] - 1]
            train = panel[(panel["date"] >= lo) & (panel["date"] <= hi)]
            for forecaster in pooled:
                try:
                    fit = forecaster.fit(train)
                except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
                    warnings.warn(f"{forecaster.name}: refit failed ({exc})", RuntimeWarning, stacklevel=2)
                    continue
                out[(forecaster.name, POOLED)] = FoldFit(fit, lo, hi, bool(fit.diagnostics.get("converged", 1.0)))
    return out
