"""Performance-weighted combination of forecasts, in three variants.

Every variant sees, at origin ``t``, only the errors already realised at ``t`` (those of
forecasts whose target session is ``t`` or earlier: an ``h``-session forecast made ``h``
rows before) over a trailing ``window``, and every variant's weights are shrunk toward
equal weights. Weights are re-estimated every ``reweight_every`` origins and held in
between; until ``min_obs`` errors of every model are realised they are equal.

``inverse_mse`` (model ``ensemble``)
    weight proportional to 1 / trailing MSE.
``stacking`` (``ensemble_stacking``)
    the least-squares combination of the trailing forecasts with non-negative weights
    that sum to one (constrained stacking, Breiman 1996), fitted walk-forward.
``regime`` (``ensemble_regime``)
    inverse of the MSE *expected in today's regime*: each model's trailing squared errors
    are averaged per HMM regime, weighting each past error by the filtered probability of
    the regime at its origin (shrunk toward the model's overall MSE when a regime has few
    observations), then mixed with today's filtered regime probabilities.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from python_models.forecasters.base import INTERVAL_LEVEL
from python_models.forecasters.ensemble_weights import (
    inverse_mse_weights,
    regime_weights,
    stacking_weights,
)

__all__ = [
    "DEFAULT_POWER",
    "DEFAULT_SHRINKAGE",
    "FORECAST_COLUMNS",
    "VARIANTS",
    "WEIGHT_COLUMNS",
    "combine_forecasts",
    "ensemble_panel",
    "regime_table",
    "weights_changed",
]

#: Shrinkage of the weights toward equal weights (0..1), the default of :func:`ensemble_panel`.
DEFAULT_SHRINKAGE = 0.2
#: Exponent of the inverse MSE for one-session forecasts, the default of :func:`ensemble_panel`
#: (``power`` there; an h-session forecast's exponent is ``power / h``). docs/models.md gives the
#: measurements it was chosen from.
DEFAULT_POWER = 30.0

#: Variant name -> model name written to the forecast tables.
VARIANTS = {"inverse_mse": "ensemble", "stacking": "ensemble_stacking", "regime": "ensemble_regime"}


def _mixture(weights: np.ndarray, y_pred: np.ndarray, y_std: np.ndarray, level: float) -> dict[str, np.ndarray]:
    # C order: each row's sums then do not depend on how many rows are combined together
    weights, y_pred, y_std = (np.ascontiguousarray(a, float) for a in (weights, y_pred, y_std))
    mean = (weights * y_pred).sum(axis=1)
    second = (weights * (y_std**2 + y_pred**2)).sum(axis=1)
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    z = stats.norm.ppf(0.5 + level / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        confidence = stats.norm.cdf(np.abs(mean) / np.where(std > 0, std, np.nan))
    return {
        "y_pred": mean,
        "y_std": std,
        "y_lower": mean - z * std,
        "y_upper": mean + z * std,
        "confidence": confidence,
    }


def combine_forecasts(
    y_pred: pd.DataFrame, y_std: pd.DataFrame, weights: pd.DataFrame, level: float = INTERVAL_LEVEL
) -> pd.DataFrame:
    """Weighted mixture of model forecasts (all frames indexed by origin, columns = models).

    The mean is the weighted mean; the standard deviation is that of the mixture,
    ``sqrt(sum w (s^2 + m^2) - mean^2)``; the interval and ``confidence`` (probability the
    realised return has the forecast's sign) treat the mixture as normal.
    """
    columns = list(y_pred.columns)
    if list(y_std.columns) != columns or list(weights.columns) != columns:
        raise ValueError("y_pred, y_std and weights must have the same model columns")
    return pd.DataFrame(_mixture(weights.to_numpy(), y_pred.to_numpy(), y_std.to_numpy(), level), index=y_pred.index)


def regime_table(regimes: pd.DataFrame) -> pd.DataFrame:
    """Wide filtered probabilities (index: date, columns: regime) from ``date, regime, probability`` rows."""
    missing = {"date", "regime", "probability"} - set(regimes.columns)
    if missing:
        raise ValueError(f"regime probabilities lack columns {sorted(missing)}")
    wide = regimes.pivot(index="date", columns="regime", values="probability").sort_index()
    wide.index = pd.DatetimeIndex(wide.index)
    return wide


FORECAST_COLUMNS = [
    "model",
    "ticker",
    "asof_date",
    "horizon",
    "target_date",
    "y_pred",
    "y_lower",
    "y_upper",
    "y_std",
    "confidence",
]
WEIGHT_COLUMNS = ["ensemble", "ticker", "horizon", "asof_date", "model", "weight"]


class _Chunk(NamedTuple):
    """One variant's weights and combination inputs for one (ticker, horizon), at the origins returned."""

    name: str
    ticker: str
    horizon: int
    origins: pd.Index
    models: list[str]
    weights: np.ndarray
    y_pred: np.ndarray
    y_std: np.ndarray
    targets: np.ndarray
    changed: np.ndarray  # per origin: its weights differ from the previous origin's (stored as a weights row)


def _long_tables(chunks: list[_Chunk], forecasts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ensemble forecasts and the long weights (one row per origin and model, models in the
    order of each chunk's columns) of all chunks, built at once: per chunk, pandas' reshaping
    costs more than the weights themselves."""
    rows = np.array([len(c.origins) for c in chunks], dtype=np.int64)
    n_models = np.array([len(c.models) for c in chunks], dtype=np.int64)
    origin_dtype = forecasts["asof_date"].dtype

    def stacked(values: list[np.ndarray], dtype=None) -> np.ndarray:
        return np.concatenate(values).astype(dtype) if values else np.array([], dtype=dtype)

    mixed = _mixtures(chunks)
    ensemble = pd.DataFrame(
        {
            "model": np.repeat([c.name for c in chunks], rows).astype(object),
            "ticker": np.repeat([c.ticker for c in chunks], rows).astype(object),
            "asof_date": stacked([c.origins.to_numpy() for c in chunks], origin_dtype),
            "horizon": np.repeat([c.horizon for c in chunks], rows).astype(np.int64),
            "target_date": stacked([c.targets for c in chunks], forecasts["target_date"].dtype),
            **{col: stacked([m[col] for m in mixed], float) for col in FORECAST_COLUMNS[5:]},
        }
    )
    # the weights only at the origins where they change; melt's order: model by model, every such origin under each
    stored = [(c, c.origins.to_numpy()[c.changed]) for c in chunks]
    long_rows = np.array([len(dates) for _, dates in stored], dtype=np.int64) * n_models
    weights = pd.DataFrame(
        {
            "ensemble": np.repeat([c.name for c in chunks], long_rows).astype(object),
            "ticker": np.repeat([c.ticker for c in chunks], long_rows).astype(object),
            "horizon": np.repeat([c.horizon for c in chunks], long_rows).astype(np.int64),
            "asof_date": stacked([np.tile(dates, len(c.models)) for c, dates in stored], origin_dtype),
            "model": stacked([np.repeat(np.asarray(c.models, object), len(dates)) for c, dates in stored], object),
            "weight": stacked([c.weights[c.changed].T.ravel() for c in chunks], float),
        }
    )
    return ensemble[FORECAST_COLUMNS], weights[WEIGHT_COLUMNS]


def _mixtures(chunks: list[_Chunk]) -> list[dict[str, np.ndarray]]:
    """:func:`_mixture` of each run of consecutive chunks with the same number of models, in one call
    a run: each row's mixture depends on that row alone (C order), and a daily refresh has a chunk of
    one origin per key and variant, where the calls would cost more than the sums."""
    out = []
    for _, same_size in itertools.groupby(chunks, key=lambda c: len(c.models)):
        run = list(same_size)
        out.append(
            _mixture(
                np.concatenate([c.weights for c in run]),
                np.concatenate([c.y_pred for c in run]),
                np.concatenate([c.y_std for c in run]),
                INTERVAL_LEVEL,
            )
        )
    return out


def ensemble_panel(
    forecasts: pd.DataFrame,
    window: int = 252,
    shrinkage: float = DEFAULT_SHRINKAGE,
    min_obs: int = 21,
    reweight_every: int = 21,
    methods: tuple[str, ...] = ("inverse_mse",),
    regimes: pd.DataFrame | None = None,
    calendar: pd.DatetimeIndex | None = None,
    after: pd.Timestamp | None = None,
    power: float = DEFAULT_POWER,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ensemble forecasts and weights for every (ticker, horizon) and variant.

    Parameters
    ----------
    forecasts : pandas.DataFrame
        Long frame with ``model, ticker, asof_date, horizon, target_date, y_pred, y_std,
        y_true`` (``y_true`` NaN while unrealised). Origins must be consecutive sessions
        per (ticker, horizon), as the walk-forward harness writes them.
    methods : tuple of str
        Variants to build, keys of :data:`VARIANTS`.
    regimes : pandas.DataFrame, optional
        ``date, regime, probability`` rows (filtered, point-in-time); required by ``regime``.
    calendar : pandas.DatetimeIndex, optional
        The exchange's sessions: weights are then re-estimated on every ``reweight_every``-th
        session of it, whatever the first origin in ``forecasts`` (so the latest rows alone,
        with ``window + horizon + reweight_every`` origins before them, give the rows the whole
        history gives). Without it, on every ``reweight_every``-th origin.
    after : pandas.Timestamp, optional
        Return only the origins after this date (an incremental run's new rows); the weights of
        those origins are still estimated from all of ``forecasts``.
    power : float
        The exponent of the inverse (regime-expected) MSE of the ``inverse_mse`` and ``regime``
        variants for one-session forecasts
        (:func:`~python_models.forecasters.ensemble_weights.inverse_mse_weights`); at horizon ``h``
        it is ``power / h``. The trailing window of ``h``-session forecasts that overlap holds about
        ``window / h`` independent errors, so the variance of their MSE is about ``h`` times larger
        and a power that separates a degraded model from good ones at ``h = 1`` would chase noise at
        ``h = 63``. (Dividing by ``sqrt(h)`` would keep the noise in the weights constant; dividing
        by ``h`` flattens long horizons more, nearly to Bates and Granger's weights at ``h = 63``.)

    Returns
    -------
    (ensemble, weights)
        ``ensemble`` has the forecast columns, ``model`` naming the variant; ``weights``
        has ``ensemble, ticker, horizon, asof_date, model, weight``, a row set only at the origins
        where a variant's weights change (:func:`weights_changed`; the first origin returned for a
        key with ``after`` set is compared with the origin before it): the weights at any origin
        are those of the latest row at or before it.
    """
    _check_inputs(forecasts, methods, regimes)
    wide_regimes = regime_table(regimes) if regimes is not None else None
    # categorical keys keep the long weights table (rows: variants x models x origins) small
    as_cat = {
        "ensemble": pd.CategoricalDtype([VARIANTS[m] for m in methods]),
        "ticker": pd.CategoricalDtype(sorted(forecasts["ticker"].unique())),
        "model": pd.CategoricalDtype(sorted(forecasts["model"].unique())),
    }
    settings = _Weighting(window, shrinkage, min_obs, reweight_every, power)
    # one index for every key's lookups: a DatetimeIndex made per key would build its hash table per key
    calendar = None if calendar is None else pd.DatetimeIndex(calendar)
    keys = []
    for (ticker, horizon), wide in _wide_groups(forecasts):
        grid = None if calendar is None else _grid(calendar, wide.sq.index, reweight_every, ticker)
        new_rows = np.ones(len(wide.sq), bool) if after is None else np.asarray(wide.sq.index > after)
        keys.append(_Key(ticker, int(horizon), wide, grid, new_rows))
    weights_by_key = settings.all_weights(methods, keys, wide_regimes)
    chunks = []
    for key, by_method in zip(keys, weights_by_key, strict=True):
        wide, new_rows = key.wide, key.new_rows
        origins = wide.sq.index[new_rows]
        for method in methods:
            w = by_method[method].to_numpy(float)
            chunks.append(
                _Chunk(
                    VARIANTS[method],
                    key.ticker,
                    key.horizon,
                    origins,
                    list(by_method[method].columns),
                    w[new_rows],
                    wide.y_pred.to_numpy(float)[new_rows],
                    wide.y_std.to_numpy(float)[new_rows],
                    wide.targets.to_numpy()[new_rows],
                    weights_changed(w)[new_rows],
                )
            )
    ensemble, weights = _long_tables(chunks, forecasts)
    weights = weights.astype(as_cat)
    return ensemble, weights


def weights_changed(weights: np.ndarray) -> np.ndarray:
    """Per row of ``weights`` (origins x models, in origin order): whether it differs from the row
    before it (the first row always does; NaN equals NaN). The rows ``ml.ensemble_weights`` stores:
    inverse-MSE and stacking weights change only when re-estimated, every ``reweight_every`` sessions."""
    changed = np.ones(len(weights), dtype=bool)
    if len(weights) > 1:
        now, before = weights[1:], weights[:-1]
        same = (now == before) | (np.isnan(now) & np.isnan(before))
        changed[1:] = ~same.all(axis=1)
    return changed


def _check_inputs(forecasts: pd.DataFrame, methods: tuple[str, ...], regimes: pd.DataFrame | None) -> None:
    """Raise ValueError for a missing column, an unknown variant, or the regime variant without regimes."""
    need = {"model", "ticker", "asof_date", "horizon", "target_date", "y_pred", "y_std", "y_true"}
    if need - set(forecasts.columns):
        raise ValueError(f"forecasts lack columns {sorted(need - set(forecasts.columns))}")
    unknown = set(methods) - set(VARIANTS)
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {sorted(VARIANTS)}, got {sorted(methods)}")
    if "regime" in methods and regimes is None:
        raise ValueError("the regime variant needs the regime probabilities")


class _Wide(NamedTuple):
    """One (ticker, horizon)'s forecasts as origins x models, at the origins every model has."""

    y_pred: pd.DataFrame
    y_std: pd.DataFrame
    y_true: pd.Series
    sq: pd.DataFrame  # squared errors (NaN while unrealised)
    targets: pd.Series  # target date per origin (the origins of ``sq``)


class _Key(NamedTuple):
    """One (ticker, horizon): its wide forecasts, re-weighting rows and the origins to return."""

    ticker: str
    horizon: int
    wide: _Wide
    grid: np.ndarray | None
    new_rows: np.ndarray


def _wide_groups(forecasts: pd.DataFrame) -> Iterator[tuple[tuple[str, int], _Wide]]:
    """Each (ticker, horizon)'s forecasts as origins x models (the models it has), in key order.

    One pivot of the whole frame, cut per key into NumPy slices: a pivot, a ``dropna`` or a
    column lookup per key costs more than the weights (~80 keys in a daily refresh)."""
    keys = ["ticker", "horizon"]
    wide = forecasts.pivot(index=[*keys, "asof_date"], columns="model", values=["y_pred", "y_std", "y_true"])
    wide = wide.sort_index()
    own_models = {key: sorted(own) for key, own in forecasts.groupby(keys, sort=True)["model"].unique().items()}
    targets = forecasts.drop_duplicates([*keys, "asof_date"]).set_index([*keys, "asof_date"])["target_date"]
    # the pivot's rows are the distinct (key, origin) pairs: each one's target date, row for row
    targets = targets.reindex(wide.index).to_numpy()
    columns = wide["y_pred"].columns  # every model, sorted (the pivot sorts them)
    position = {model: i for i, model in enumerate(columns)}
    values = ("y_pred", "y_std", "y_true")
    y_pred, y_std, y_true = (wide[value].reindex(columns=columns).to_numpy(float) for value in values)
    origins = wide.index.get_level_values("asof_date")
    # each key's rows are contiguous in the sorted pivot
    tickers, horizons = wide.index.codes[0], wide.index.codes[1]
    starts = np.flatnonzero(np.r_[True, (tickers[1:] != tickers[:-1]) | (horizons[1:] != horizons[:-1])])
    for start, stop in zip(starts.tolist(), [*starts[1:].tolist(), len(wide)], strict=True):
        key = (wide.index.levels[0][tickers[start]], wide.index.levels[1][horizons[start]])
        own = np.array([position[model] for model in own_models[key]])
        pred, std = y_pred[start:stop, own], y_std[start:stop, own]
        shared = ~(np.isnan(pred).any(axis=1) | np.isnan(std).any(axis=1))  # origins all its models share
        index, names = origins[start:stop][shared], columns[own]
        realised = y_true[start:stop, own[0]][shared]  # the first model's: every model has the origins kept
        pred = pred[shared]
        yield (
            key,
            _Wide(
                pd.DataFrame(pred, index=index, columns=names),
                pd.DataFrame(std[shared], index=index, columns=names),
                pd.Series(realised, index=index, name=names[0]),
                pd.DataFrame((pred - realised[:, None]) ** 2, index=index, columns=names),
                pd.Series(targets[start:stop][shared], index=index, name="target_date"),
            ),
        )


def _grid(calendar: pd.DatetimeIndex, origins: pd.Index, reweight_every: int, ticker: str) -> np.ndarray:
    """The re-weighting rows: origins on every ``reweight_every``-th session of the calendar."""
    pos = calendar.get_indexer(pd.DatetimeIndex(origins))
    if (pos < 0).any():
        raise ValueError(f"{ticker}: forecast origins missing from the calendar")
    return pos % reweight_every == 0


@dataclass(frozen=True)
class _Weighting:
    """The settings every variant's weights share."""

    window: int
    shrinkage: float
    min_obs: int
    reweight_every: int
    power: float  # at one session; power / h at horizon h

    def all_weights(
        self, methods: tuple[str, ...], keys: list[_Key], regimes: pd.DataFrame | None
    ) -> list[dict[str, pd.DataFrame]]:
        """Each key's weights per variant: the keys of one horizon and one set of models stacked and
        weighted in one call per variant (each key on its own rows: the same weights as one call per
        key, without a pandas call per key)."""
        out: list[dict[str, pd.DataFrame]] = [{} for _ in keys]
        batches: dict[tuple, list[int]] = {}
        for i, key in enumerate(keys):
            batches.setdefault((key.horizon, tuple(key.wide.sq.columns), key.grid is None), []).append(i)
        for (h, _, no_grid), members in batches.items():
            wides = [keys[i].wide for i in members]
            lengths = [len(w.sq) for w in wides]
            stacked = _Wide(
                pd.concat([w.y_pred for w in wides]),
                pd.concat([w.y_std for w in wides]),
                pd.concat([w.y_true for w in wides]),
                pd.concat([w.sq for w in wides]),
                pd.Series(dtype=object),  # targets: not needed for the weights
            )
            grid = None if no_grid else np.concatenate([np.asarray(keys[i].grid, bool) for i in members])
            by = np.repeat(np.arange(len(members)), lengths)
            bounds = np.cumsum([0, *lengths])
            for method in methods:
                w = self.weights(method, stacked, h, grid, regimes, by)
                for j, i in enumerate(members):
                    out[i][method] = w.iloc[bounds[j] : bounds[j + 1]]
        return out

    def weights(
        self,
        method: str,
        wide: _Wide,
        h: int,
        grid: np.ndarray | None,
        regimes: pd.DataFrame | None,
        by: np.ndarray | None = None,
    ) -> pd.DataFrame:
        """The weights of variant ``method`` at every origin of ``wide`` (of each ``by`` label's rows
        on their own, where several keys are stacked)."""
        if method == "inverse_mse":
            return inverse_mse_weights(
                wide.sq,
                h,
                self.window,
                self.shrinkage,
                self.min_obs,
                self.reweight_every,
                grid,
                by=by,
                power=self.power / h,
            )
        if method == "stacking":  # a regression needs more rows than an average before it is trusted
            return stacking_weights(
                wide.y_pred,
                wide.y_true,
                h,
                self.window,
                self.shrinkage,
                max(self.min_obs, 63),
                self.reweight_every,
                grid,
                by=by,
            )
        if regimes is None:
            raise ValueError("the regime variant needs the regime probabilities")
        return regime_weights(
            wide.sq,
            regimes.reindex(pd.DatetimeIndex(wide.sq.index)).set_axis(wide.sq.index),
            h,
            self.window,
            self.shrinkage,
            self.min_obs,
            self.reweight_every,
            grid=grid,
            by=by,
            power=self.power / h,
        )
