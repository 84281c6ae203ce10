"""Bayesian ridge regression (scikit-learn): the linear baseline, with predictive spread.

At origin ``t`` the features are trailing statistics of the ticker's own log returns up to
``t``: the last five returns, the mean return over 5, 21 and 63 sessions (momentum) and
the 21-session standard deviation. One regression per horizon ``h`` maps them to the
cumulative log return over the next ``h`` sessions; in training only origins whose
target lies wholly inside the training window are used. The forecast mean is the
posterior predictive mean, its variance the posterior predictive variance (parameter
uncertainty plus the estimated noise), both from ``BayesianRidge.predict(return_std=True)``.
Features are standardised with the training window's mean and standard deviation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # sklearn is imported when a model is fitted
    from sklearn.linear_model import BayesianRidge

from python_models.forecasters.base import (
    DEFAULT_HORIZONS,
    FitResult,
    Forecaster,
    ReturnForecast,
    check_origins,
    validate_fitted_horizons,
    validate_horizons,
    validate_returns,
)

LAGS = 5
MEAN_WINDOWS = (5, 21, 63)
VOL_WINDOW = 21
WARM_UP = max(MEAN_WINDOWS + (VOL_WINDOW, LAGS)) - 1  # first origin with every feature


def return_features(returns: pd.Series) -> pd.DataFrame:
    """Features per session from returns up to and including it (NaN during warm-up)."""
    cols = {f"lag_{k}": returns.shift(k) for k in range(LAGS)}
    cols |= {f"mean_{w}": returns.rolling(w, min_periods=w).mean() for w in MEAN_WINDOWS}
    cols[f"std_{VOL_WINDOW}"] = returns.rolling(VOL_WINDOW, min_periods=VOL_WINDOW).std()
    return pd.DataFrame(cols)


def forward_sums(returns: pd.Series | pd.DataFrame, horizon: int) -> pd.Series | pd.DataFrame:
    """Cumulative log return over the ``horizon`` sessions after each session (NaN at the end,
    and wherever one of them is NaN); column by column for a frame."""
    return returns.rolling(horizon).sum().shift(-horizon)


def predictive(model: BayesianRidge, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior predictive mean and variance: ``BayesianRidge.predict(x, return_std=True)``'s
    formulas (``x @ coef_ + intercept_``; ``z sigma_ z' + 1 / alpha_`` with ``z = x - X_offset_``)
    without its input checks, which cost more than the algebra on a walk-forward's few dozen rows."""
    mean = x @ model.coef_ + model.intercept_
    centred = x - model.X_offset_
    variance = (np.dot(centred, model.sigma_) * centred).sum(axis=1) + 1.0 / model.alpha_
    return mean, variance


@dataclass
class BayesianRidgeResult(FitResult):
    """One fitted BayesianRidge per horizon, with the feature standardisation."""

    models: dict[int, BayesianRidge] = field(default_factory=dict)
    centre: np.ndarray | None = None
    scale: np.ndarray | None = None

    def forecast(self, returns: pd.Series, origins: pd.Index, horizons: Sequence[int]) -> ReturnForecast:
        pos = check_origins(returns, origins)
        hs = validate_fitted_horizons(horizons, self.models)
        feats = return_features(returns.iloc[: pos.max() + 1]).iloc[pos]  # nothing after the last origin
        if feats.isna().any().any():
            raise ValueError(f"each origin needs {WARM_UP} earlier returns for its features")
        x = (feats.to_numpy() - self.centre) / self.scale
        mean, var = np.empty((len(pos), len(hs))), np.empty((len(pos), len(hs)))
        for j, h in enumerate(hs):
            mean[:, j], var[:, j] = predictive(self.models[h], x)
        return ReturnForecast(pd.Index(origins), hs, mean, var)


class BayesianRidgeForecaster(Forecaster):
    """Bayesian ridge on trailing return features, one regression per horizon.

    Parameters
    ----------
    horizons : sequence of int
        Horizons fitted (forecasts are limited to them).
    """

    def __init__(self, horizons: Sequence[int] = DEFAULT_HORIZONS) -> None:
        self.horizons = validate_horizons(horizons)
        self.name = "bayesian_ridge"

    def fit(self, returns: pd.Series) -> BayesianRidgeResult:
        from sklearn.linear_model import BayesianRidge

        r = validate_returns(returns, min_obs=WARM_UP + max(self.horizons) + 50)
        feats = return_features(r)
        valid = feats.notna().all(axis=1)
        centre = feats[valid].mean().to_numpy()
        scale = feats[valid].std().to_numpy()
        if not (scale > 0).all():
            raise ValueError("a feature is constant over the training window")
        models, diagnostics = {}, {}
        for h in self.horizons:
            target = forward_sums(r, h)  # inside the window only: NaN for the last h origins
            rows = (valid & target.notna()).to_numpy()
            x = (feats.to_numpy()[rows] - centre) / scale
            y = target.to_numpy()[rows]
            model = BayesianRidge().fit(x, y)
            models[h] = model
            residual = y - predictive(model, x)[0]
            diagnostics[f"r2_h{h}"] = float(1.0 - residual @ residual / np.sum((y - y.mean()) ** 2))
            diagnostics[f"noise_sd_h{h}"] = float(1 / np.sqrt(model.alpha_))
        first = models[self.horizons[0]]
        params = pd.Series(first.coef_, index=feats.columns).add_prefix(f"coef_h{self.horizons[0]}_")
        params[f"intercept_h{self.horizons[0]}"] = first.intercept_
        diagnostics["converged"] = float(all(np.isfinite(m.coef_).all() for m in models.values()))
        return BayesianRidgeResult(params=params, diagnostics=diagnostics, models=models, centre=centre, scale=scale)
