"""Performance-weighted combination of forecasts.

At each origin ``t`` a model's weight is proportional to the inverse of its mean squared
error over the last ``window`` forecasts already realised at ``t`` (those whose target
session is ``t`` or earlier), shrunk toward equal weights. Until every model has
``min_obs`` realised errors the weights are equal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from python_models.base import INTERVAL_LEVEL


def inverse_mse_weights(
    sq_errors: pd.DataFrame, horizon: int, window: int = 252, shrinkage: float = 0.5, min_obs: int = 21
) -> pd.DataFrame:
    """Combination weights per origin from squared errors.

    Parameters
    ----------
    sq_errors : pandas.DataFrame
        Index: consecutive forecast origins (sessions); columns: models; values: squared
        error of the ``horizon``-session forecast made at that origin (NaN if unrealised).
    horizon : int
        The error at origin ``i`` is known ``horizon`` rows later, so it enters the
        weights from row ``i + horizon`` on.
    window, shrinkage, min_obs
        Trailing errors used, weight on the equal-weight prior (0..1), and the fewest
        realised errors before performance weighting starts.
    """
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage}")
    if horizon < 1 or window < 1 or min_obs < 1:
        raise ValueError("horizon, window and min_obs must be positive")
    m = sq_errors.shape[1]
    mse = sq_errors.rolling(window, min_periods=min_obs).mean().shift(horizon)
    inv = 1.0 / mse.clip(lower=1e-18)
    perf = inv.div(inv.sum(axis=1), axis=0)
    weights = (1.0 - shrinkage) * perf + shrinkage / m
    equal = mse.isna().any(axis=1)
    weights.loc[equal] = 1.0 / m
    return weights


def combine_forecasts(
    y_pred: pd.DataFrame, y_std: pd.DataFrame, weights: pd.DataFrame, level: float = INTERVAL_LEVEL
) -> pd.DataFrame:
    """Weighted mixture of model forecasts (all frames indexed by origin, columns = models).

    The mean is the weighted mean; the standard deviation is that of the mixture,
    ``sqrt(sum w (s^2 + m^2) - mean^2)``; the interval and ``confidence`` (probability the
    realised return has the forecast's sign) treat the mixture as normal.
    """
    mean = (weights * y_pred).sum(axis=1)
    second = (weights * (y_std**2 + y_pred**2)).sum(axis=1)
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    z = stats.norm.ppf(0.5 + level / 2.0)
    confidence = stats.norm.cdf(np.abs(mean) / std.where(std > 0))
    return pd.DataFrame(
        {"y_pred": mean, "y_std": std, "y_lower": mean - z * std, "y_upper": mean + z * std, "confidence": confidence},
        index=y_pred.index,
    )


def ensemble_panel(
    forecasts: pd.DataFrame, window: int = 252, shrinkage: float = 0.5, min_obs: int = 21, name: str = "ensemble"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ensemble forecasts and weights for every (ticker, horizon).

    Parameters
    ----------
    forecasts : pandas.DataFrame
        Long frame with ``model, ticker, asof_date, horizon, target_date, y_pred, y_std,
        y_true`` (``y_true`` NaN while unrealised). Origins must be consecutive sessions
        per (ticker, horizon), as the walk-forward harness writes them.

    Returns
    -------
    (ensemble, weights)
        ``ensemble`` has the forecast columns with ``model = name``; ``weights`` has
        ``ticker, horizon, asof_date, model, weight``.
    """
    need = {"model", "ticker", "asof_date", "horizon", "target_date", "y_pred", "y_std", "y_true"}
    if need - set(forecasts.columns):
        raise ValueError(f"forecasts lack columns {sorted(need - set(forecasts.columns))}")
    out, wts = [], []
    for (ticker, horizon), g in forecasts.groupby(["ticker", "horizon"], sort=True):
        wide = g.pivot(index="asof_date", columns="model", values=["y_pred", "y_std", "y_true"]).sort_index()
        wide = wide.dropna(subset=[c for c in wide.columns if c[0] != "y_true"])  # origins all models share
        y_pred, y_std = wide["y_pred"], wide["y_std"]
        y_true = wide["y_true"].iloc[:, 0]
        sq = y_pred.sub(y_true, axis=0) ** 2
        w = inverse_mse_weights(sq, int(horizon), window, shrinkage, min_obs)
        comb = combine_forecasts(y_pred, y_std, w)
        targets = g.drop_duplicates("asof_date").set_index("asof_date")["target_date"]
        comb = (
            comb.assign(model=name, ticker=ticker, horizon=int(horizon), target_date=targets.reindex(comb.index))
            .rename_axis("asof_date")
            .reset_index()
        )
        out.append(comb)
        long_w = (
            w.rename_axis("asof_date").reset_index().melt(id_vars="asof_date", var_name="model", value_name="weight")
        )
        wts.append(long_w.assign(ticker=ticker, horizon=int(horizon)))
    ensemble = pd.concat(out, ignore_index=True)[
        [
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
    ]
    weights = pd.concat(wts, ignore_index=True)[["ticker", "horizon", "asof_date", "model", "weight"]]
    return ensemble, weights
