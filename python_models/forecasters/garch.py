"""The GARCH family with Student-t errors and a constant mean, via the ``arch`` package.

``Garch(vol="GARCH")`` is GARCH(1,1); ``vol="GJR"`` adds the asymmetric (leverage) term
of Glosten, Jagannathan and Runkle (o = 1); ``vol="EGARCH"`` models the log variance
(Nelson). GARCH and GJR have analytic multi-step variance forecasts; EGARCH's are
simulated (``simulations`` paths, seeded), so it is much slower.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import arch.univariate.base as arch_base
import numpy as np
import pandas as pd
from arch import arch_model

from python_models.forecasters.base import (
    FitResult,
    Forecaster,
    ReturnForecast,
    check_origins,
    validate_horizons,
    validate_returns,
)

# arch's optimiser is happiest with returns in percent.
_SCALE = 100.0


#: arch's names of the innovation distributions.
Distribution = Literal["normal", "gaussian", "t", "studentst", "skewstudent", "skewt", "ged", "generalized error"]

#: arch's vol and asymmetry order for each member of the family, and pmx's model name.
FAMILY: dict[str, tuple[Literal["GARCH", "EGARCH"], int, str]] = {
    "GARCH": ("GARCH", 0, "garch"),
    "GJR": ("GARCH", 1, "gjr_garch"),
    "EGARCH": ("EGARCH", 1, "egarch"),
}


def _arch(returns: pd.Series, vol: str, p: int, q: int, dist: Distribution):
    arch_vol, o, _ = FAMILY[vol]
    return arch_model(_SCALE * returns, mean="Constant", vol=arch_vol, p=p, o=o, q=q, dist=dist)


def linear_constraints(a: np.ndarray, b: np.ndarray) -> list[dict[str, Any]]:
    """arch's inequality constraints ``a @ params - b >= 0`` for SciPy's SLSQP, each with its gradient.

    arch passes the constraints without one, so SLSQP differentiates each (linear) constraint
    numerically at every iteration: half of a GARCH fit's time. The gradient of a row is the row.
    """

    def row(coeff: np.ndarray, bound: float) -> dict[str, Any]:
        return {
            "type": "ineq",
            "fun": lambda params, *args: np.dot(coeff, params) - bound,
            "jac": lambda params, *args: coeff,
        }

    return [row(a[i], b[i]) for i in range(a.shape[0])]


@contextmanager
def exact_constraint_gradients() -> Iterator[None]:
    """arch's fits inside the block give SLSQP the constraints' exact gradients (:func:`linear_constraints`).

    Only the gradients SLSQP uses change, not the problem: measured on 324 windows of six default
    stocks (756 sessions, the walk-forward's), the fits took 9.0 against 17.0 ms (GARCH) and 10.4
    against 21.4 ms (GJR); the parameters were the same bit for bit in most windows, and where the
    optimiser stopped elsewhere on the likelihood's flat ridge the log-likelihoods differed by at most
    2.5e-5 (``docs/benchmarks.md``). Swapped in for the block only (arch builds them with a module
    function), so other arch fits in the process are left as arch makes them.
    """
    own = arch_base.constraint
    arch_base.constraint = linear_constraints
    try:
        yield
    finally:
        arch_base.constraint = own


def causal_variance_bounds(resids: np.ndarray, power: float = 2.0) -> np.ndarray:
    """arch's loose bounds on the conditional variance, using only residuals up to each session.

    arch clamps its variance recursion between bounds built from an EWMA of squared
    residuals (causal) but then floors and caps them with the variance and the largest
    square of *all* residuals passed in, so an absurd value after a forecast origin could
    move the forecast made at it. Same bounds here, with expanding statistics instead.
    """
    resids = np.asarray(resids, dtype=float)
    n = resids.shape[0]
    tau = min(75, n)
    w = 0.94 ** np.arange(tau)
    w = w / w.sum()
    ewma = np.empty(n)
    ewma[0] = w.dot(resids[:tau] ** 2)  # arch's initial value (from the first, earliest sessions)
    for t in range(1, n):
        ewma[t] = 0.94 * ewma[t - 1] + 0.06 * resids[t - 1] ** 2
    bounds = np.column_stack([ewma / 1e6, ewma * 1e6])
    count = np.arange(1, n + 1)
    mean = np.cumsum(resids) / count
    var = np.maximum(np.cumsum(resids**2) / count - mean**2, 0.0)
    largest = np.maximum.accumulate(resids**2)
    lower, min_upper, upper = var / 1e8, 1 + largest, 1e7 * (1 + largest)
    bounds[:, 0] = np.where(bounds[:, 0] < lower, lower, bounds[:, 0])
    bounds[:, 1] = np.where(bounds[:, 1] < min_upper, min_upper, bounds[:, 1])
    bounds[:, 1] = np.where(bounds[:, 1] > upper, upper, bounds[:, 1])
    return bounds ** (power / 2.0) if power != 2.0 else bounds


@dataclass
class GarchResult(FitResult):
    """Fitted parameters (on percent returns) and the specification to rebuild the model."""

    p: int = 1
    q: int = 1
    dist: Distribution = "t"
    vol: str = "GARCH"
    simulations: int = 500
    seed: int = 0

    def _model(self, returns: pd.Series):
        model = _arch(returns, self.vol, self.p, self.q, self.dist)
        model.volatility.variance_bounds = causal_variance_bounds  # see causal_variance_bounds
        return model

    def _forecast_options(self) -> dict:
        if self.vol != "EGARCH":
            return {"method": "analytic"}
        return {
            "method": "simulation",
            "simulations": self.simulations,
            "rng": np.random.default_rng(self.seed).standard_normal,
        }

    def forecast(self, returns: pd.Series, origins: pd.Index, horizons: Sequence[int]) -> ReturnForecast:
        pos = check_origins(returns, origins)
        hs = validate_horizons(horizons)
        # Data after the last origin is cut off, so no forecast can read it.
        history = returns.iloc[: pos.max() + 1]
        one_lag = self.vol != "EGARCH" and self.p == 1 and self.q == 1
        fc = self._model(history).forecast(
            params=self.params.to_numpy(),
            start=history.index[pos.min()],
            # GARCH(1,1)/GJR(1,1,1): arch's one-step variances, and the later steps' recursion below
            horizon=1 if one_lag else max(hs),
            reindex=False,
            **self._forecast_options(),
        )
        rows = pos - pos.min()  # arch's rows are the sessions from the first origin on
        step_var = fc.variance.to_numpy()[rows]
        if one_lag:
            step_var = self._variance_path(step_var[:, 0], max(hs))
        # the constant mean: every step's mean is the first's
        step_mean = np.repeat(fc.mean.to_numpy()[rows, :1], step_var.shape[1], axis=1) / _SCALE
        step_var = step_var / _SCALE**2
        # Constant mean and serially uncorrelated errors: cumulative moments are sums.
        idx = np.asarray(hs) - 1
        mean = np.cumsum(step_mean, axis=1)[:, idx]
        var = np.cumsum(step_var, axis=1)[:, idx]
        return ReturnForecast(pd.Index(origins), hs, mean, var)

    def _variance_path(self, first: np.ndarray, steps: int) -> np.ndarray:
        """The analytic variance forecasts of GARCH(1,1) and GJR(1,1,1), steps 1..``steps``, from the
        one-step forecasts ``first`` (percent², one per origin), every origin at once.

        arch's own analytic forecast loops over origins and steps in Python (~10 ms for the 63 x 63 of a
        fold: half of a walk-forward's time). This is its recursion with the same operations in the same
        order, on a vector of origins: beyond the first step the expected squared shock is the variance,
        and the expected squared negative shock half of it (arch's symmetric assumption for the asymmetry
        term). Against arch's own forecast on 120 folds of five default stocks: 114 the same bit for bit,
        the rest within 6.7e-16 (relative; arch recomputes the first step from the residual, unclipped).
        """
        omega, alpha, beta = (float(self.params[name]) for name in ("omega", "alpha[1]", "beta[1]"))
        gamma = float(self.params["gamma[1]"]) if self.vol == "GJR" else None
        out = np.empty((len(first), steps))
        out[:, 0] = first
        for h in range(1, steps):
            previous = out[:, h - 1]
            step = omega + alpha * np.sqrt(previous) ** 2
            if gamma is not None:
                step = step + gamma * np.sqrt(0.5 * previous) ** 2
            out[:, h] = step + beta * previous
        return out

    def volatility_forecast(self, returns: pd.Series, horizon: int) -> np.ndarray:
        """Per-step conditional standard deviation of daily log returns after the last date."""
        fc = self._model(returns).forecast(
            params=self.params.to_numpy(), horizon=horizon, reindex=False, **self._forecast_options()
        )
        return np.sqrt(fc.variance.to_numpy()[-1]) / _SCALE


class Garch(Forecaster):
    """GARCH(p, q), GJR-GARCH or EGARCH with Student-t innovations and a constant mean.

    Parameters
    ----------
    p, q : int
        ARCH and GARCH orders.
    dist : str
        Innovation distribution (arch's name: "t", "normal", "skewt", ...).
    vol : {"GARCH", "GJR", "EGARCH"}
        Family member.
    simulations : int
        Paths of EGARCH's simulated multi-step forecasts.
    """

    def __init__(
        self, p: int = 1, q: int = 1, dist: Distribution = "t", vol: str = "GARCH", simulations: int = 500
    ) -> None:
        if p < 1 or q < 0:
            raise ValueError(f"GARCH orders must satisfy p >= 1, q >= 0; got p={p}, q={q}")
        if vol not in FAMILY:
            raise ValueError(f"vol must be one of {sorted(FAMILY)}, got {vol!r}")
        self.p, self.q, self.dist, self.vol, self.simulations = p, q, dist, vol, simulations
        self.name = FAMILY[vol][2]

    def fit(self, returns: pd.Series) -> GarchResult:
        r = validate_returns(returns, min_obs=100)
        with exact_constraint_gradients():
            res = _arch(r, self.vol, self.p, self.q, self.dist).fit(disp="off", show_warning=False)
        if res.convergence_flag != 0:
            # SLSQP with the exact constraint gradients can stop far from the optimum ("Inequality
            # constraints incompatible"): on 2 of 500 synthetic tickers' GJR windows, with one BLAS thread
            # as the walk-forward runs, at a mean of -2,085 % a day and a log-likelihood of -276,608 against
            # arch's -1,707, and its forecasts overflowed to inf. arch's own constraints converged there.
            res = _arch(r, self.vol, self.p, self.q, self.dist).fit(disp="off", show_warning=False)
        alphas = res.params[[f"alpha[{i}]" for i in range(1, self.p + 1)]].sum()
        betas = res.params[[f"beta[{i}]" for i in range(1, self.q + 1)]].sum()
        if self.vol == "GARCH":
            persistence = alphas + betas
        elif self.vol == "GJR":
            persistence = alphas + betas + 0.5 * res.params["gamma[1]"]  # symmetric innovations
        else:
            persistence = betas  # EGARCH: the log variance's autoregressive coefficient
        return GarchResult(
            params=res.params,
            diagnostics={
                "aic": float(res.aic),
                "bic": float(res.bic),
                "loglik": float(res.loglikelihood),
                "persistence": float(persistence),
                "converged": float(res.convergence_flag == 0),
            },
            p=self.p,
            q=self.q,
            dist=self.dist,
            vol=self.vol,
            simulations=self.simulations,
        )
