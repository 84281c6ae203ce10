"""Pooled gradient-boosted trees (XGBoost) on the point-in-time feature library.

One model per horizon is fitted on every ticker's rows of the training window at once, so
it learns from the cross-section rather than from one stock's few hundred sessions. The
features are the ticker-agnostic columns of ``marts.features`` (returns, ranks, ratios,
volatilities, oscillators, calendar): columns in price or currency units (MACD lines,
dollar volume) would let trees tell tickers apart by their price level and are left out,
as is anything identifying the ticker.

Target and scale. For origin ``t`` and horizon ``h`` the target is the cumulative log
return over the next ``h`` sessions divided by ``sigma_t sqrt(h)``, where ``sigma_t`` is
the ticker's daily 21-session realised volatility at ``t`` (``realized_vol_21 /
sqrt(252)``): a volatility-standardised return, comparable across tickers and years. The
forecast mean is the prediction times ``sigma_t sqrt(h)``; its variance is
``s2 sigma_t^2 h`` with ``s2`` the mean squared standardised error on the validation
block, so intervals widen with the ticker's current volatility and reflect the model's
real out-of-sample error, not its (overfitted) training error.

Validation. The last ``validation`` share of the training window's sessions is held out;
training rows whose ``h``-session label would reach into it are dropped (a purge), and
boosting stops when the validation error has not improved for ``early_stopping`` rounds.
The final model is refitted on the whole window (labels inside it only) with the number
of rounds found. Gain importances per feature are kept for every fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # xgboost is imported when a model is fitted
    import xgboost

from python_models.backtest.performance import PERIODS_PER_YEAR
from python_models.forecasters.base import (
    DEFAULT_HORIZONS,
    PanelFitResult,
    PanelForecaster,
    ReturnForecast,
    validate_fitted_horizons,
    validate_horizons,
    validate_panel,
)
from python_models.forecasters.linear import forward_sums

#: Columns of marts.features that are bookkeeping, identify the ticker, or are in price or
#: currency units rather than ticker-agnostic.
EXCLUDED = frozenset(
    {
        "ticker",
        "date",
        "log_return",
        "has_price",
        "refreshed_at",
        "ingested_at",
        "macd",
        "macd_signal",
        "macd_hist",
        "dollar_volume",
        "dollar_volume_21",
    }
)
#: Fewest labelled rows to train on and to validate on, per horizon (a small universe with a
#: short window, e.g. 2 stocks and 400 sessions, has about 35 validation rows at h = 63).
MIN_FIT_ROWS, MIN_VALIDATION_ROWS = 200, 30
#: Annualised 21-session realised volatility: the scale of the standardised target.
SCALE_COLUMN = "realized_vol_21"


def feature_columns(panel: pd.DataFrame) -> list[str]:
    """Numeric, ticker-agnostic feature columns of ``panel`` (see :data:`EXCLUDED`)."""
    numeric = panel.select_dtypes(include=["number", "bool"]).columns
    return [c for c in numeric if c not in EXCLUDED]


def forward_returns(panel: pd.DataFrame, horizon: int) -> np.ndarray:
    """Cumulative log return over the ``horizon`` sessions after each row, within
    ``panel`` only (NaN when it runs past the panel's last session or spans a missing
    return), aligned with the rows of ``panel``."""
    wide = panel.pivot(index="date", columns="ticker", values="log_return")
    stacked = forward_sums(wide, horizon).stack(future_stack=True).rename("fwd")
    key = pd.MultiIndex.from_arrays([panel["date"], panel["ticker"]])
    return stacked.reindex(key).to_numpy(float)


def daily_scale(panel: pd.DataFrame) -> np.ndarray:
    """Daily volatility per row (NaN where it is missing or not positive)."""
    if SCALE_COLUMN not in panel.columns:
        raise ValueError(f"the pooled XGBoost model needs feature column {SCALE_COLUMN!r}")
    sigma = panel[SCALE_COLUMN].to_numpy(float) / np.sqrt(PERIODS_PER_YEAR)
    return np.where(sigma > 0, sigma, np.nan)


@dataclass
class XgboostResult(PanelFitResult):
    """One booster per horizon and the validation error scale ``s2`` of each."""

    boosters: dict[int, xgboost.Booster] = field(default_factory=dict)
    error_scale: dict[int, float] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)

    def forecast(self, panel: pd.DataFrame, origins: pd.Index, horizons: Sequence[int]) -> dict[str, ReturnForecast]:
        import xgboost as xgb

        hs = validate_fitted_horizons(horizons, self.boosters)
        p = validate_panel(panel)
        missing = set(self.features) - set(p.columns)
        if missing:
            raise ValueError(f"panel lacks the fitted feature columns {sorted(missing)}")
        rows = p[p["date"].isin(pd.DatetimeIndex(origins))]
        sigma = daily_scale(rows)
        rows, sigma = rows[np.isfinite(sigma)], sigma[np.isfinite(sigma)]  # no scale: no forecast
        if rows.empty:
            return {}
        x = xgb.DMatrix(rows[self.features].to_numpy(np.float32), feature_names=self.features)
        mean, var = np.empty((len(rows), len(hs))), np.empty((len(rows), len(hs)))
        for j, h in enumerate(hs):
            scale = sigma * np.sqrt(h)
            mean[:, j] = self.boosters[h].predict(x) * scale
            var[:, j] = self.error_scale[h] * scale**2
        out = {}
        for ticker, idx in rows.groupby("ticker", sort=True).indices.items():
            dates = pd.DatetimeIndex(rows["date"].to_numpy()[idx])
            out[ticker] = ReturnForecast(dates, hs, mean[idx], var[idx])
        return out


class PooledXgboost(PanelForecaster):
    """Gradient-boosted trees pooled across tickers (see the module docstring).

    Parameters
    ----------
    horizons : sequence of int
        Horizons fitted, one booster each.
    max_rounds : int
        Most boosting rounds.
    learning_rate, max_depth, min_child_weight, subsample, colsample_bytree, reg_lambda
        XGBoost tree parameters; shallow trees with large leaves, as daily returns are
        mostly noise.
    validation : float
        Share of the training window's sessions held out for early stopping and ``s2``.
    early_stopping : int
        Rounds without validation improvement before boosting stops.
    seed : int
        Seed of row and column subsampling.
    n_jobs : int
        XGBoost threads (the Dagster asset sets it to PMX_WORKERS). Forecasts on the default
        data were identical with 1 and 2 threads (largest difference 0.0).
    refit_every : int or None
        Sessions between refits.
    """

    needs_features = True

    def __init__(
        self,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        max_rounds: int = 300,
        learning_rate: float = 0.05,
        max_depth: int = 3,
        min_child_weight: float = 200.0,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 10.0,
        validation: float = 0.2,
        early_stopping: int = 25,
        seed: int = 0,
        n_jobs: int = 1,
        refit_every: int | None = 126,
    ) -> None:
        if not 0 < validation < 0.5:
            raise ValueError(f"validation must be in (0, 0.5), got {validation}")
        if max_rounds < 1 or early_stopping < 1:
            raise ValueError("max_rounds and early_stopping must be positive")
        self.horizons = validate_horizons(horizons)
        self.max_rounds, self.validation, self.early_stopping = max_rounds, validation, early_stopping
        self.params = {
            "objective": "reg:squarederror",
            "tree_method": "hist",
            "eta": learning_rate,
            "max_depth": max_depth,
            "min_child_weight": min_child_weight,
            "subsample": subsample,
            "colsample_bytree": colsample_bytree,
            "lambda": reg_lambda,
            "seed": seed,
        }
        self.n_jobs = n_jobs
        self.refit_every = refit_every
        self.name = "xgboost"

    def panel_columns(self, available: Sequence[str]) -> list[str]:
        return [c for c in available if c not in EXCLUDED]

    def single_precision_columns(self, panel: pd.DataFrame) -> list[str]:
        # the trees see float32 (XGBoost's DMatrix stores it); the scale standardises targets in float64
        return [c for c in feature_columns(panel) if c != SCALE_COLUMN and panel[c].dtype == np.float64]

    def check_columns(self, panel: pd.DataFrame) -> None:
        if not feature_columns(panel):
            raise ValueError("panel has no feature columns for the pooled XGBoost model")
        daily_scale(panel.head(0))  # raises without the scale column

    def fit(self, panel: pd.DataFrame) -> XgboostResult:
        import xgboost as xgb

        p = validate_panel(panel)
        self.check_columns(p)
        features = feature_columns(p)
        dates = pd.DatetimeIndex(p["date"].unique())
        cut = int(len(dates) * (1 - self.validation))
        if cut < 100 or len(dates) - cut <= max(self.horizons) + 10:  # some validation labels for every horizon
            raise ValueError(f"a training window of {len(dates)} sessions is too short to hold out a validation block")
        pos = dates.get_indexer(p["date"])
        sigma = daily_scale(p)
        # float32, as the DMatrix holds them: a float64 copy would double the largest arrays of a fit
        x_all = p[features].to_numpy(np.float32)
        boosters, error_scale, diagnostics, importances = {}, {}, {}, []
        for h in self.horizons:
            y = forward_returns(p, h) / (sigma * np.sqrt(h))
            labelled = np.isfinite(y)
            fit_rows = labelled & (pos + h < cut)  # labels end before the validation block
            val_rows = labelled & (pos >= cut)
            if fit_rows.sum() < MIN_FIT_ROWS or val_rows.sum() < MIN_VALIDATION_ROWS:
                raise ValueError(
                    f"too few labelled rows for horizon {h} ({fit_rows.sum()} train, {val_rows.sum()} val)"
                )
            d_fit = xgb.DMatrix(x_all[fit_rows], label=y[fit_rows], feature_names=features)
            d_val = xgb.DMatrix(x_all[val_rows], label=y[val_rows], feature_names=features)
            params = {**self.params, "nthread": self.n_jobs}
            probe = xgb.train(
                params,
                d_fit,
                num_boost_round=self.max_rounds,
                evals=[(d_val, "val")],
                early_stopping_rounds=self.early_stopping,
                verbose_eval=False,
            )
            rounds = probe.best_iteration + 1
            pred = probe.predict(d_val, iteration_range=(0, rounds))
            s2 = float(np.mean((pred - y[val_rows]) ** 2))
            d_all = xgb.DMatrix(x_all[labelled], label=y[labelled], feature_names=features)
            booster = xgb.train(params, d_all, num_boost_round=rounds)
            boosters[h], error_scale[h] = booster, s2
            diagnostics[f"rounds_h{h}"] = float(rounds)
            diagnostics[f"val_mse_h{h}"] = s2
            # skill against forecasting zero on the same standardised validation targets
            diagnostics[f"val_skill_h{h}"] = 1.0 - s2 / float(np.mean(y[val_rows] ** 2))
            importances.append(_importances(booster, features, h))
        diagnostics["rows"] = float(len(p))
        diagnostics["converged"] = float(all(np.isfinite(v) for v in error_scale.values()))
        params = pd.Series({f"rounds_h{h}": diagnostics[f"rounds_h{h}"] for h in self.horizons})
        return XgboostResult(
            params=params,
            diagnostics=diagnostics,
            importances=pd.concat(importances, ignore_index=True),
            boosters=boosters,
            error_scale=error_scale,
            features=features,
        )


def _importances(booster, features: list[str], horizon: int) -> pd.DataFrame:
    """Share of the total split gain and the split count of every feature (0 if unused)."""
    gain = booster.get_score(importance_type="total_gain")
    splits = booster.get_score(importance_type="weight")
    total = sum(gain.values()) or 1.0
    return pd.DataFrame(
        {
            "horizon": horizon,
            "feature": features,
            "gain": [gain.get(f, 0.0) / total for f in features],
            "splits": [int(splits.get(f, 0)) for f in features],
        }
    )
