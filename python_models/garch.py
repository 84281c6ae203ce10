"""GARCH(1,1) with Student-t errors and a constant mean, via the ``arch`` package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from arch import arch_model

from python_models.base import FitResult, Forecaster, ReturnForecast, check_origins, validate_horizons, validate_returns

# arch's optimiser is happiest with returns in percent.
_SCALE = 100.0


@dataclass
class GarchResult(FitResult):
    """Fitted GARCH parameters (on percent returns) and the specification to rebuild it."""

    p: int = 1
    q: int = 1
    dist: str = "t"

    def _model(self, returns: pd.Series):
        return arch_model(_SCALE * returns, mean="Constant", vol="GARCH", p=self.p, q=self.q, dist=self.dist)

    def forecast(self, returns: pd.Series, origins: pd.Index, horizons: Sequence[int]) -> ReturnForecast:
        pos = check_origins(returns, origins)
        hs = validate_horizons(horizons)
        # Data after the last origin is cut off, so no forecast can read it.
        history = returns.iloc[: pos.max() + 1]
        fc = self._model(history).forecast(
            params=self.params.to_numpy(),
            start=history.index[pos.min()],
            horizon=max(hs),
            method="analytic",
            reindex=False,
        )
        step_mean = fc.mean.loc[list(origins)].to_numpy() / _SCALE
        step_var = fc.variance.loc[list(origins)].to_numpy() / _SCALE**2
        # Constant mean and serially uncorrelated errors: cumulative moments are sums.
        idx = np.asarray(hs) - 1
        mean = np.cumsum(step_mean, axis=1)[:, idx]
        var = np.cumsum(step_var, axis=1)[:, idx]
        return ReturnForecast(pd.Index(origins), hs, mean, var)

    def volatility_forecast(self, returns: pd.Series, horizon: int) -> np.ndarray:
        """Per-step conditional standard deviation of daily log returns after the last date."""
        fc = self._model(returns).forecast(params=self.params.to_numpy(), horizon=horizon, reindex=False)
        return np.sqrt(fc.variance.to_numpy()[-1]) / _SCALE


class Garch(Forecaster):
    """GARCH(p, q) with Student-t innovations and a constant mean on daily log returns."""

    def __init__(self, p: int = 1, q: int = 1, dist: str = "t") -> None:
        if p < 1 or q < 0:
            raise ValueError(f"GARCH orders must satisfy p >= 1, q >= 0; got p={p}, q={q}")
        self.p, self.q, self.dist = p, q, dist
        self.name = "garch"

    def fit(self, returns: pd.Series) -> GarchResult:
        r = validate_returns(returns, min_obs=100)
        res = arch_model(_SCALE * r, mean="Constant", vol="GARCH", p=self.p, q=self.q, dist=self.dist).fit(
            disp="off", show_warning=False
        )
        persistence = float(
            res.params[[f"alpha[{i}]" for i in range(1, self.p + 1)]].sum()
            + res.params[[f"beta[{i}]" for i in range(1, self.q + 1)]].sum()
        )
        return GarchResult(
            params=res.params,
            diagnostics={
                "aic": float(res.aic),
                "bic": float(res.bic),
                "loglik": float(res.loglikelihood),
                "persistence": persistence,
                "converged": float(res.convergence_flag == 0),
            },
            p=self.p,
            q=self.q,
            dist=self.dist,
        )
