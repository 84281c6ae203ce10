"""ARMA/SARIMAX on daily log returns via statsmodels, with fast multi-origin forecasts.

Refitting at every origin would cost one optimisation per session. Instead the fitted
parameters are held fixed and the Kalman filter is run once over the history: the
predicted state at each origin gives every horizon's mean by iterating the transition
equation, and the state covariance gives the variance of the cumulative return.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.tsa.statespace.sarimax import SARIMAX

from python_models.base import FitResult, Forecaster, ReturnForecast, check_origins, validate_horizons, validate_returns
from python_models.metrics import ljung_box

_SCALE = 100.0


def _fixed(ssm, name: str) -> np.ndarray:
    """A system matrix at time 0 (ARMA models are time-invariant)."""
    m = ssm[name]
    time_dims = {
        "design": 3,
        "obs_cov": 3,
        "transition": 3,
        "selection": 3,
        "state_cov": 3,
        "obs_intercept": 2,
        "state_intercept": 2,
    }[name]
    return m[..., 0] if m.ndim == time_dims else m


@dataclass
class SarimaxResult(FitResult):
    order: tuple[int, int, int] = (1, 0, 1)
    trend: str = "c"

    def _model(self, returns: pd.Series) -> SARIMAX:
        return SARIMAX(_SCALE * returns.to_numpy(), order=self.order, trend=self.trend)

    def forecast(self, returns: pd.Series, origins: pd.Index, horizons: Sequence[int]) -> ReturnForecast:
        pos = check_origins(returns, origins)
        hs = validate_horizons(horizons)
        history = returns.iloc[: pos.max() + 1]
        model = self._model(history)
        filtered = model.filter(self.params.to_numpy())
        ssm = model.ssm
        T, Z, c, d, R, Q, H = (
            _fixed(ssm, n)
            for n in ("transition", "design", "state_intercept", "obs_intercept", "selection", "state_cov", "obs_cov")
        )
        z = Z[0]
        h_max = max(hs)
        # a_{t+1|t} for every origin t is column t + 1 of predicted_state.
        state = filtered.filter_results.predicted_state[:, pos + 1]
        step_mean = np.empty((len(pos), h_max))
        for k in range(h_max):
            step_mean[:, k] = d[0] + z @ state
            state = T @ state + c[:, None]
        cum_var = self._cumulative_variance(
            filtered.filter_results.predicted_state_cov[:, :, pos.min() + 1], T, z, R @ Q @ R.T, H[0, 0], h_max
        )
        idx = np.asarray(hs) - 1
        mean = np.cumsum(step_mean, axis=1)[:, idx] / _SCALE
        var = np.tile(cum_var[idx], (len(pos), 1)) / _SCALE**2
        return ReturnForecast(pd.Index(origins), hs, mean, var)

    @staticmethod
    def _cumulative_variance(
        P1: np.ndarray, T: np.ndarray, z: np.ndarray, RQR: np.ndarray, obs_var: float, h_max: int
    ) -> np.ndarray:
        """Var(y_1 + ... + y_h) for h = 1..h_max given the one-step state covariance P1.

        Cov(y_i, y_j) = z T^(j-i) P_i z' for i < j, plus the observation variance on the
        diagonal. The ARMA filter's covariance converges within a few sessions, so the
        path from the first origin of a block serves every origin in it (and does not
        depend on how far the block's data extends).
        """
        P = [P1]
        for _ in range(h_max - 1):
            P.append(T @ P[-1] @ T.T + RQR)
        out = np.empty(h_max)
        total = 0.0
        carried = np.zeros_like(z)  # v_j = sum_{i<j} T^(j-i) P_i z', so v_{j+1} = T (v_j + P_j z')
        for j in range(h_max):
            total += float(z @ P[j] @ z) + obs_var + 2.0 * float(z @ carried)
            carried = T @ (carried + P[j] @ z)
            out[j] = total
        return out


class Sarimax(Forecaster):
    """ARMA(p, q) with a constant (SARIMAX with d = 0) on daily log returns.

    Parameters
    ----------
    order : tuple of int, or "auto"
        (p, 0, q); "auto" selects it per fit by AIC over p, q <= ``max_order`` among fits
        that converged, falling back to ARMA(1, 1) and then to the constant-only model when
        none did (the guardrails of an automated search). A fixed order that does not
        converge falls back the same way; ``diagnostics["p"]``/``["q"]`` say what was used.
    trend : str
        statsmodels trend ("c": constant).
    max_order : int
        Largest p and q tried by "auto".
    """

    FALLBACKS: tuple[tuple[int, int, int], ...] = ((1, 0, 1), (0, 0, 0))

    def __init__(self, order: tuple[int, int, int] | str = (1, 0, 1), trend: str = "c", max_order: int = 2) -> None:
        if order == "auto":
            if not 0 <= max_order <= 4:
                raise ValueError(f"max_order must be in [0, 4] (a bounded search), got {max_order}")
            self.order, self.name = "auto", "sarimax_auto"
        else:
            if len(order) != 3 or any(o < 0 for o in order):
                raise ValueError(f"SARIMAX order must be three non-negative ints, got {order}")
            if order[1] != 0:
                raise ValueError("pmx models returns, which are already differenced: use d = 0")
            self.order, self.name = tuple(order), "sarimax"
        self.trend, self.max_order = trend, max_order

    def _fit_order(self, r: pd.Series, order: tuple[int, int, int]):
        model = SARIMAX(_SCALE * r.to_numpy(), order=order, trend=self.trend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = model.fit(disp=False)
        converged = bool(res.mle_retvals.get("converged", True)) if res.mle_retvals else True
        return model, res, converged and bool(np.isfinite(res.aic))

    def fit(self, returns: pd.Series) -> SarimaxResult:
        r = validate_returns(returns, min_obs=60)
        if self.order == "auto":
            candidates = [(p, 0, q) for p in range(self.max_order + 1) for q in range(self.max_order + 1)]
            fits = [(order, *self._fit_order(r, order)) for order in candidates]
            good = [f for f in fits if f[3]]
            if good:
                order, model, res, converged = min(good, key=lambda f: f[2].aic)
            else:
                order, model, res, converged = next(
                    (f for f in ((o, *self._fit_order(r, o)) for o in self.FALLBACKS) if f[3]), fits[0]
                )
        else:
            order = self.order
            model, res, converged = self._fit_order(r, order)
            if not converged:
                # a fit the optimiser did not finish can sit near a unit root with a large
                # constant, and its multi-step forecasts then explode (seen on RRC, 2006)
                for fallback in self.FALLBACKS:
                    if fallback == order:
                        continue
                    candidate = (fallback, *self._fit_order(r, fallback))
                    if candidate[3]:
                        order, model, res, converged = candidate
                        break
        resid = np.asarray(res.resid)[order[0] :]  # skip the filter's first, unconditioned residuals
        return SarimaxResult(
            params=pd.Series(res.params, index=model.param_names),
            diagnostics={
                "aic": float(res.aic),
                "bic": float(res.bic),
                "loglik": float(res.llf),
                "ljung_box_pvalue": ljung_box(resid)[1],
                "p": float(order[0]),
                "q": float(order[2]),
                "converged": float(converged),
            },
            order=order,
            trend=self.trend,
        )
