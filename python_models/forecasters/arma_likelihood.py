"""Maximum likelihood of statsmodels' SARIMAX with its Kalman filter compiled for ARMA models.

A SARIMAX fit spends ~85 % of its time in statsmodels' general Kalman filter, called ~100
times by the optimiser (L-BFGS with a finite-difference gradient): ~0.8 ms a pass over 756
sessions, most of it the general filter's matrix algebra for a two-state model. For the models
pmx fits (d = 0, a constant, optional regressors, a multiplicative seasonal AR) the state space
is the Harvey form of one ARMA polynomial, and its exact Gaussian likelihood is a few scalar
loops: compiled with numba they take ~40 microseconds.

:func:`maximum_likelihood` keeps everything else of ``SARIMAX.fit``: the model's own starting
values and parameter transformations (stationarity and invertibility enforced), the same
objective (minus the log-likelihood over the observations), the same optimiser and settings
(``fmin_l_bfgs_b``, a forward-difference gradient with step 1e-5, 50 iterations). Only the
floating-point order of the likelihood's sums differs, so the estimates equal statsmodels' own
within the optimiser's tolerance (tests/python_models/forecasters/test_arma_likelihood.py
compares them, and the log-likelihood at given parameters to 1e-9).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.optimize import fmin_l_bfgs_b
from statsmodels.tsa.statespace.sarimax import SARIMAX

_LOG_2PI = float(np.log(2.0 * np.pi))

#: statsmodels' settings of ``MLEModel.fit(method="lbfgs")`` with its defaults (maxiter 50, a
#: forward-difference gradient of step 1e-5, unbounded): kept so the optimiser's path is its own.
LBFGS_SETTINGS = {"approx_grad": True, "epsilon": 1e-5, "maxiter": 50}


@njit(cache=True, error_model="numpy")
def _harvey_system(ar: np.ndarray, ma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Transition matrix and selection vector of the Harvey form: state dimension max(p, q + 1),
    the AR coefficients down the first column, ones on the superdiagonal, R = (1, theta_1, ...)."""
    r = max(len(ar), len(ma) + 1)
    transition = np.zeros((r, r))
    for i in range(len(ar)):
        transition[i, 0] = ar[i]
    for i in range(r - 1):
        transition[i, i + 1] = 1.0
    selection = np.zeros(r)
    selection[0] = 1.0
    for i in range(len(ma)):
        selection[i + 1] = ma[i]
    return transition, selection


@njit(cache=True, error_model="numpy")
def arma_filter(
    y: np.ndarray, ar: np.ndarray, ma: np.ndarray, intercept: float, sigma2: float, keep_states: bool = False
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Exact Gaussian log-likelihood of ``y`` and its one-step prediction errors under
    y_t = x_t, (1 - ar(L)) x_t = intercept + (1 + ma(L)) e_t, Var(e_t) = sigma2.

    ``ar`` and ``ma`` are the reduced (seasonal terms multiplied in) lag coefficients, as
    statsmodels' SARIMAX puts them in its state space; the constant enters the state equation,
    as there. The filter starts from the stationary distribution (mean solve(I - T, c), covariance
    the discrete Lyapunov equation's solution), statsmodels' ``stationary`` initialisation.
    A unit root (a singular stationary system) or a non-positive prediction variance gives -inf;
    the caller keeps ``ar`` stationary (statsmodels' transformation does). A NaN in ``y`` is a
    missing observation (no update).

    Returns the log-likelihood, the prediction errors and, with ``keep_states``, the predicted state
    means (n + 1, r) and covariances (n + 1, r, r): row t is the state of session t given the sessions
    before it, row n the state after the last session (statsmodels' ``predicted_state`` transposed).
    """
    transition, selection = _harvey_system(ar, ma)
    r = len(selection)
    n = len(y)
    errors = np.full(n, np.nan)
    kept = n + 1 if keep_states else 0
    states = np.full((kept, r), np.nan)
    covariances = np.full((kept, r, r), np.nan)
    rqr = sigma2 * np.outer(selection, selection)
    # stationary start: vec(P) = (I - T (x) T)^-1 vec(RQR'), a = (I - T)^-1 c
    system = np.eye(r * r) - np.kron(transition, transition)
    try:
        cov = np.linalg.solve(system, rqr.reshape(r * r)).reshape(r, r)
        state = np.linalg.solve(np.eye(r) - transition, np.eye(r)[:, 0] * intercept)
    except Exception:  # singular: a unit root
        return -np.inf, errors, states, covariances
    cov = 0.5 * (cov + cov.T)
    loglike = 0.0
    gain = np.empty(r)
    updated = np.empty((r, r))
    for t in range(n):
        if keep_states:
            states[t] = state
            covariances[t] = cov
        f = cov[0, 0]
        if not f > 0.0:
            return -np.inf, errors, states, covariances
        if np.isnan(y[t]):  # missing, as statsmodels treats it: no update, no likelihood term
            v = 0.0
            for i in range(r):
                gain[i] = 0.0
        else:
            v = y[t] - state[0]
            errors[t] = v
            loglike -= 0.5 * (_LOG_2PI + np.log(f) + v * v / f)
            for i in range(r):
                gain[i] = cov[i, 0] / f
        # updated state; then predicted: a <- T a + c e1, P <- T P T' + RQR'
        first = state[0] + gain[0] * v
        for i in range(r):
            nxt = state[i + 1] + gain[i + 1] * v if i + 1 < r else 0.0
            state[i] = transition[i, 0] * first + nxt
        state[0] += intercept
        for i in range(r):
            for j in range(r):
                updated[i, j] = cov[i, j] - gain[i] * cov[0, j]
        # T P T' for the companion T: (T M)_ij = T_i0 M_0j + M_(i+1)j
        for i in range(r):
            for j in range(r):
                cov[i, j] = transition[i, 0] * updated[0, j] + (updated[i + 1, j] if i + 1 < r else 0.0)
        for i in range(r):
            for j in range(i, r):
                value = cov[i, 0] * transition[j, 0] + (cov[i, j + 1] if j + 1 < r else 0.0) + rqr[i, j]
                updated[i, j] = value
        for i in range(r):
            for j in range(i, r):
                cov[i, j] = updated[i, j]
                cov[j, i] = updated[i, j]
    if keep_states:
        states[n] = state
        covariances[n] = cov
    return loglike, errors, states, covariances


@dataclass(frozen=True)
class ArmaMle:
    """A SARIMAX maximum-likelihood fit: parameters in the model's (constrained) space and order."""

    params: np.ndarray
    loglike: float
    #: one-step prediction errors, in the model's units
    resid: np.ndarray
    converged: bool
    iterations: int
    nobs: int

    @property
    def aic(self) -> float:
        return -2.0 * self.loglike + 2.0 * len(self.params)

    @property
    def bic(self) -> float:
        return -2.0 * self.loglike + np.log(self.nobs) * len(self.params)


@dataclass(frozen=True)
class ArmaShape:
    """Where a SARIMAX parameter vector keeps each part (statsmodels' order: the constant, the
    regressors' coefficients, AR, MA, seasonal AR, the innovation variance)."""

    k_trend: int
    k_exog: int
    k_ar: int
    k_ma: int
    k_seasonal_ar: int = 0
    season: int = 0

    @classmethod
    def of(cls, model: SARIMAX) -> ArmaShape:
        """The shape of a model this filter covers.

        Raises
        ------
        ValueError
            For a model this filter does not cover.
        """
        unsupported = (
            model.k_diff
            or model.k_seasonal_diff
            or model.k_seasonal_ma
            or model.measurement_error
            or model.time_varying_regression
            or (model.k_exog and not model.mle_regression)
            or model.concentrate_scale
            or model.hamilton_representation
            or model.trend not in ("c", "n", None)
            or not model.enforce_stationarity  # statsmodels then starts the filter diffuse, not stationary
            or model._has_fixed_params
        )
        if unsupported:
            raise ValueError(
                "ArmaLikelihood covers SARIMAX with d = 0, a constant or no trend, regressors by MLE, "
                "optional seasonal AR terms, stationarity enforced, no fixed parameters, and nothing else"
            )
        return cls(
            model.k_trend,
            model.k_exog,
            model.k_ar_params,
            model.k_ma_params,
            model.k_seasonal_ar_params,
            model.seasonal_periods,
        )

    def parts(self, params: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, float]:
        """(constant, regressors' coefficients, reduced AR, reduced MA, innovation variance)."""
        params = np.asarray(params, float)
        i = 0
        intercept = float(params[0]) if self.k_trend else 0.0
        i += self.k_trend
        beta = params[i : i + self.k_exog]
        i += self.k_exog
        ar = params[i : i + self.k_ar]
        i += self.k_ar
        ma = params[i : i + self.k_ma]
        i += self.k_ma
        if self.k_seasonal_ar:
            # (1 - ar(L)) (1 - sar(L^s)), as statsmodels multiplies them
            seasonal = np.zeros(self.k_seasonal_ar * self.season + 1)
            seasonal[0] = 1.0
            seasonal[self.season :: self.season] = -params[i : i + self.k_seasonal_ar]
            ar = -np.convolve(np.r_[1.0, -ar], seasonal)[1:]
            i += self.k_seasonal_ar
        return intercept, beta, np.ascontiguousarray(ar), np.ascontiguousarray(ma), float(params[i])

    def system(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The state space statsmodels builds: transition T, design z, state intercept c, R Q R'."""
        intercept, _, ar, ma, sigma2 = self.parts(params)
        transition, selection = _harvey_system(ar, ma)
        design = np.zeros(len(selection))
        design[0] = 1.0
        return transition, design, intercept * design, sigma2 * np.outer(selection, selection)

    def filter(
        self, params: np.ndarray, y: np.ndarray, exog: np.ndarray | None = None, keep_states: bool = False
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """:func:`arma_filter` of ``y`` less the regressors' part."""
        intercept, beta, ar, ma, sigma2 = self.parts(params)
        if self.k_exog:
            if exog is None:
                raise ValueError("this model has regressors: pass exog")
            y = y - exog @ beta
        return arma_filter(np.ascontiguousarray(y, dtype=float), ar, ma, intercept, sigma2, keep_states)


class ArmaLikelihood:
    """The log-likelihood of a SARIMAX model (d = 0, constant trend, no seasonal MA or measurement
    error) at parameters in its own space, by :func:`arma_filter`.

    Raises
    ------
    ValueError
        For a model this filter does not cover.
    """

    def __init__(self, model: SARIMAX) -> None:
        self.shape = ArmaShape.of(model)
        self.y = np.ascontiguousarray(model.endog[:, 0], dtype=float)
        self.exog = None if model.k_exog == 0 else np.asarray(model.exog, float)
        self.nobs = len(self.y)

    def loglike(self, params: np.ndarray) -> float:
        """Log-likelihood at constrained parameters (the model's ``loglike(params)``)."""
        return self.shape.filter(params, self.y, self.exog)[0]

    def resid(self, params: np.ndarray) -> np.ndarray:
        return self.shape.filter(params, self.y, self.exog)[1]


def maximum_likelihood(model: SARIMAX) -> ArmaMle:
    """``model.fit(disp=False)``'s estimates, with the likelihood from :func:`arma_filter` (see
    the module docstring): the model's start values, transformations, objective and optimiser."""
    likelihood = ArmaLikelihood(model)
    n = likelihood.nobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns on non-stationary/non-invertible starting values
        start = model.untransform_params(model.start_params)

    def objective(unconstrained: np.ndarray) -> float:
        value = likelihood.loglike(model.transform_params(unconstrained))
        return -value / n if np.isfinite(value) else np.inf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best, _, info = fmin_l_bfgs_b(objective, start, bounds=[(None, None)] * len(start), **LBFGS_SETTINGS)
    params = model.transform_params(best)
    loglike, resid, _, _ = likelihood.shape.filter(params, likelihood.y, likelihood.exog)
    return ArmaMle(params, float(loglike), resid, info["warnflag"] == 0, int(info["nit"]), n)
