"""Random walk with drift: the baseline every other model is scored against."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from python_models.forecasters.base import (
    FitResult,
    Forecaster,
    ReturnForecast,
    check_origins,
    validate_horizons,
    validate_returns,
)


@dataclass
class RandomWalkResult(FitResult):
    """Drift ``mu`` and daily variance ``sigma2`` of the log price."""

    def forecast(self, returns: pd.Series, origins: pd.Index, horizons: Sequence[int]) -> ReturnForecast:
        check_origins(returns, origins)
        hs = np.asarray(validate_horizons(horizons), dtype=float)
        mean = np.tile(self.params["mu"] * hs, (len(origins), 1))
        var = np.tile(self.params["sigma2"] * hs, (len(origins), 1))
        return ReturnForecast(pd.Index(origins), tuple(int(h) for h in hs), mean, var)


class RandomWalk(Forecaster):
    """Log price follows a random walk with drift: ``log P_{t+h} = log P_t + h mu + e``.

    With ``drift=False`` the expected log return is zero (the martingale forecast).
    The drift is the training-sample mean, so the forecast is "naive with drift".
    """

    def __init__(self, drift: bool = True) -> None:
        self.drift = drift
        self.name = "random_walk"

    def fit(self, returns: pd.Series) -> RandomWalkResult:
        r = validate_returns(returns).to_numpy()
        mu = float(r.mean()) if self.drift else 0.0
        sigma2 = float(r.var(ddof=1))
        return RandomWalkResult(
            params=pd.Series({"mu": mu, "sigma2": sigma2}),
            diagnostics={"nobs": float(len(r))},
        )
