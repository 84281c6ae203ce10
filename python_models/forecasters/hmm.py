"""Gaussian hidden Markov regime model on daily returns and volatility (hmmlearn).

Each session is described by its log return and the log of its trailing ``vol_window``
session standard deviation. A ``states``-state Gaussian HMM (full covariances) is fitted
by EM; states are then ordered by their mean volatility, calm first, so regime 0 always
means the same thing across refits.

Regime probabilities are *filtered*: the forward recursion, started where the fit's
training sample starts, uses sessions up to and including ``t`` only (hmmlearn's
``predict_proba`` smooths with the backward pass, which reads the future, and is not
used). A return forecast from origin ``t`` propagates the filtered probabilities through
the transition matrix: the mean of the ``h``-session cumulative return is the sum over
steps of the expected state mean; its variance adds the expected within-state variances
and the variance of the sum of state means along the Markov chain, computed exactly by a
forward recursion.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import multivariate_normal

from python_models.evaluation.walk_forward import WalkForwardConfig, walk_forward_folds
from python_models.forecasters.base import (
    FitResult,
    Forecaster,
    ReturnForecast,
    check_origins,
    validate_horizons,
    validate_returns,
)
from python_models.forecasters.hmm_em import HmmEmFailure, HmmEmFit, fit_gaussian_hmm, forward_filter

#: Where hmmlearn's EM reports ("Model is not converging", a degenerate covariance) go, at INFO: into the
#: run's log. hmmlearn logs them as warnings, which Python prints on the terminal when nothing handles them.
log = logging.getLogger(__name__)

#: The hmmlearn loggers a GaussianHMM fit writes to.
HMMLEARN_LOGGERS = ("hmmlearn.base", "hmmlearn.hmm")


class _ToModuleLog(logging.Filter):
    """Logs a record of hmmlearn's again on :data:`log`, at INFO and naming the window being fitted,
    and drops the original (a logger's filter runs before any handler, the last-resort one included)."""

    def __init__(self, first: pd.Timestamp, last: pd.Timestamp, covariance_type: str) -> None:
        super().__init__()
        self.first, self.last, self.covariance_type = first, last, covariance_type

    def filter(self, record: logging.LogRecord) -> bool:
        log.info(
            "HMM EM (%s covariances) on %s..%s: %s",
            self.covariance_type,
            f"{self.first:%Y-%m-%d}",
            f"{self.last:%Y-%m-%d}",
            record.getMessage(),
        )
        return False


@cache
def _openmp_threads() -> Any:
    """The OpenMP runtimes loaded once hmmlearn is (scikit-learn's among them), to limit around a fit.

    hmmlearn starts EM from scikit-learn's k-means, whose OpenMP reductions differ in the last bits
    with the number of threads. The callers' one-thread limit (``threadpool_limits`` in the walk-forward
    tasks) only reaches the libraries loaded when it was set, and scikit-learn's runtime is loaded by the
    fit's own import when nothing imported scikit-learn before: so a fit in this process could use every
    core while the same fit in a Dask worker (``OMP_NUM_THREADS=1``) used one, and differ. Built once per
    process, because a ``threadpool_limits`` call scans every loaded library (~3 ms).
    """
    import hmmlearn.hmm  # noqa: F401 - loads scikit-learn and its OpenMP runtime
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="openmp")


@contextmanager
def hmmlearn_logs_to_module_log(first: pd.Timestamp, last: pd.Timestamp, covariance_type: str) -> Iterator[None]:
    """For the length of the block, hmmlearn's log records go to :data:`log` (see :class:`_ToModuleLog`)."""
    reroute = _ToModuleLog(first, last, covariance_type)
    loggers = [logging.getLogger(name) for name in HMMLEARN_LOGGERS]
    for logger in loggers:
        logger.addFilter(reroute)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(reroute)


def regime_features(returns: pd.Series, vol_window: int = 10) -> pd.DataFrame:
    """(log return, log trailing volatility) per session; NaN until the window is full."""
    vol = returns.rolling(vol_window, min_periods=vol_window).std()
    return pd.DataFrame({"log_return": returns, "log_vol": np.log(vol.where(vol > 0))})


@dataclass(kw_only=True)  # keyword-only: the fitted arrays have no default, FitResult's fields do
class HmmResult(FitResult):
    """State means/covariances (ordered calm to turbulent), transition matrix, start probabilities."""

    means: np.ndarray  # (K, 2)
    covars: np.ndarray  # (K, 2, 2)
    transmat: np.ndarray  # (K, K)
    startprob: np.ndarray  # (K,)
    vol_window: int = 10
    filter_start: pd.Timestamp | None = None  # the filter starts where the training sample did
    centre: np.ndarray  # feature standardisation of the training sample
    scale: np.ndarray

    def filtered_probabilities(self, returns: pd.Series) -> pd.DataFrame:
        """P(state at t | sessions up to t) for every session with features, one column per regime."""
        feats = regime_features(returns, self.vol_window).iloc[self.vol_window - 1 :]
        x = (feats.to_numpy() - self.centre) / self.scale
        missing = ~np.isfinite(x).all(axis=1)  # e.g. a constant stretch has no log volatility
        x = np.where(missing[:, None], 0.0, x)
        k = len(self.startprob)
        loglik = np.column_stack(
            [multivariate_normal(self.means[j], self.covars[j], allow_singular=True).logpdf(x) for j in range(k)]
        )
        # likelihoods scaled per session (the scale cancels in the normalisation); a session
        # so extreme that every state gives it zero likelihood carries no information
        top = loglik.max(axis=1, keepdims=True)
        like = np.where(np.isfinite(top), np.exp(loglik - np.where(np.isfinite(top), top, 0.0)), 1.0)
        like[missing] = 1.0  # a missing observation: the filter only propagates
        out = forward_filter(self.startprob, self.transmat, like)
        return pd.DataFrame(out, index=feats.index, columns=[f"regime_{j}" for j in range(k)])

    def forecast(self, returns: pd.Series, origins: pd.Index, horizons: Sequence[int]) -> ReturnForecast:
        pos = check_origins(returns, origins)
        hs = validate_horizons(horizons)
        history = returns.iloc[: pos.max() + 1]
        if self.filter_start is not None:
            history = history.loc[self.filter_start :]
        probs = self.filtered_probabilities(history).reindex(pd.Index(origins))
        if probs.isna().any().any():
            raise ValueError(f"each origin needs {self.vol_window} earlier returns for its regime features")
        # the return dimension, back in return units
        mu = self.means[:, 0] * self.scale[0] + self.centre[0]
        var = self.covars[:, 0, 0] * self.scale[0] ** 2
        a = probs.to_numpy()  # (n, K): P(s_t = k)
        m = np.zeros_like(a)  # E[S_j 1{s_j = k}]
        q = np.zeros_like(a)  # E[S_j^2 1{s_j = k}]
        within = np.zeros(len(a))
        mean, variance = np.empty((len(a), len(hs))), np.empty((len(a), len(hs)))
        for j in range(1, max(hs) + 1):
            a_next = a @ self.transmat
            m_carried, q_carried = m @ self.transmat, q @ self.transmat
            q = q_carried + 2 * mu * m_carried + a_next * mu**2
            m = m_carried + a_next * mu
            a = a_next
            within += a @ var
            if j in hs:
                i = hs.index(j)
                mean[:, i] = m.sum(axis=1)
                variance[:, i] = q.sum(axis=1) - mean[:, i] ** 2 + within
        return ReturnForecast(pd.Index(origins), hs, mean, variance)


class GaussianHmm(Forecaster):
    """Gaussian HMM regime model (see the module docstring).

    Parameters
    ----------
    states : int
        Hidden regimes.
    vol_window : int
        Sessions of the trailing volatility feature.
    seed : int
        EM initialisation seed (fits are deterministic given it).
    n_iter : int
        EM iterations at most.
    refit_every : int or None
        Sessions between refits in the walk-forward harness (EM is the slowest fit of the
        default set); None uses the harness's cadence.
    """

    def __init__(
        self, states: int = 4, vol_window: int = 10, seed: int = 0, n_iter: int = 100, refit_every: int | None = 126
    ) -> None:
        if states < 2:
            raise ValueError(f"states must be at least 2, got {states}")
        self.states, self.vol_window, self.seed, self.n_iter = states, vol_window, seed, n_iter
        self.refit_every = refit_every
        self.name = "hmm"

    def fit(self, returns: pd.Series) -> HmmResult:
        r = validate_returns(returns, min_obs=max(100, 20 * self.states))
        feats = regime_features(r, self.vol_window).dropna().to_numpy()
        centre, scale = feats.mean(axis=0), feats.std(axis=0)
        if not (scale > 0).all():
            raise ValueError("returns or their volatility are constant over the training window")
        x = (feats - centre) / scale  # standardised, so one covariance floor suits both features
        # the first attempt is hmmlearn's full-covariance EM with per-session scaling, run compiled (hmm_em: the
        # same estimates, ~7 times faster with its k-means start); where its scaling underflows (a session ~38
        # standard deviations from every state) or a covariance degenerates, hmmlearn itself in logs, then, as
        # a guardrail, with diagonal covariances (by scaling, then in logs)
        try:
            fitted = fit_gaussian_hmm(x, self.states, self.seed, self.n_iter, tol=1e-4)
            covariance_type = "full"
            _log_steps_down(fitted.history, r.index[0], r.index[-1])
        except HmmEmFailure:
            fitted = self._fit_hmmlearn(x, r.index[0], r.index[-1])
            covariance_type = fitted.covariance_type
        converged = covariance_type == "full"  # a fit that fell back to diagonal covariances is marked
        order = np.argsort(fitted.means[:, 1])  # calm (low volatility) first
        transmat = fitted.transmat[np.ix_(order, order)]
        result = HmmResult(
            params=pd.Series(
                {
                    f"{name}_{j}": fitted.means[s, c]
                    for j, s in enumerate(order)
                    for c, name in enumerate(("mu", "logvol"))
                }
            ),
            diagnostics={
                "loglik": fitted.loglike,
                "iterations": float(fitted.iterations),
                "converged": float(fitted.converged and converged),
            },
            means=fitted.means[order],
            covars=fitted.covars[order],  # full matrices for every covariance type
            transmat=transmat,
            startprob=fitted.startprob[order],
            vol_window=self.vol_window,
            filter_start=r.index[0],
            centre=centre,
            scale=scale,
        )
        k = self.states
        free = k * 2 + k * 3 + k * (k - 1) + (k - 1)  # means, covariances, transitions, start
        result.diagnostics["aic"] = 2 * free - 2 * result.diagnostics["loglik"]
        result.diagnostics["bic"] = float(np.log(len(x)) * free - 2 * result.diagnostics["loglik"])
        return result

    def _fit_hmmlearn(self, x: np.ndarray, first: pd.Timestamp, last: pd.Timestamp) -> _HmmlearnFit:
        """hmmlearn's EM: full covariances in logs, then diagonal ones by scaling and in logs."""
        from hmmlearn.hmm import GaussianHMM

        attempts = [("full", "log"), ("diag", "scaling"), ("diag", "log")]
        for covariance_type, implementation in attempts:
            model = GaussianHMM(
                n_components=self.states,
                covariance_type=covariance_type,
                n_iter=self.n_iter,
                random_state=self.seed,
                tol=1e-4,
                implementation=implementation,
            )
            try:
                with (
                    warnings.catch_warnings(),
                    hmmlearn_logs_to_module_log(first, last, covariance_type),
                    _openmp_threads().limit(limits=1),  # the same k-means here as in a Dask worker
                ):
                    warnings.simplefilter("ignore")  # hmmlearn warns on non-monotone EM steps near convergence
                    model.fit(x)
                history = tuple(float(v) for v in model.monitor_.history)
                return _HmmlearnFit(
                    startprob=model.startprob_,
                    transmat=model.transmat_,
                    means=model.means_,
                    covars=model.covars_,  # full matrices for every type
                    loglike=float(model.score(x)),
                    iterations=int(model.monitor_.iter),
                    converged=len(history) >= 2 and history[-1] - history[-2] < model.tol,
                    history=history,
                    covariance_type=covariance_type,
                )
            except (ValueError, np.linalg.LinAlgError):
                continue
        raise RuntimeError("the Gaussian HMM failed to fit with full and with diagonal covariances")


def _log_steps_down(history: Sequence[float], first: pd.Timestamp, last: pd.Timestamp) -> None:
    """Each EM step that lowered the likelihood, logged at INFO as hmmlearn's monitor reports it
    (beyond the square root of machine precision; near convergence it is rounding, further out a sign
    the start was poor)."""
    precision = np.finfo(float).eps ** 0.5
    for before, after in zip(history[:-1], history[1:], strict=True):
        if after - before < -precision:
            log.info(
                "HMM EM (full covariances) on %s..%s: Model is not converging.  Current: %s is not greater than %s."
                " Delta is %s",
                f"{first:%Y-%m-%d}",
                f"{last:%Y-%m-%d}",
                after,
                before,
                after - before,
            )


@dataclass(frozen=True)
class _HmmlearnFit(HmmEmFit):
    covariance_type: str = "full"


def walk_forward_regimes(
    returns: pd.Series,
    train_window: int,
    refit_every: int,
    gap: int,
    model: GaussianHmm | None = None,
    since: pd.Timestamp | None = None,
):
    """Filtered regime probabilities per session, each from a fit that ended before it.

    The HMM is refitted every ``refit_every`` sessions on the ``train_window`` returns that
    end ``gap`` sessions earlier (the forecasters' purge and embargo); between refits its
    forward filter runs on with the parameters fixed. Returns a long frame
    ``date, regime, probability, train_end``: one row per session and regime. With ``since``,
    only the sessions after it, from the folds that hold them (the rows a full run gives them):
    the daily refresh's cost is one fold, not the history.
    """
    model = model or GaussianHmm()
    r = validate_returns(returns)
    config = WalkForwardConfig(train_window=train_window, refit_every=refit_every, purge=gap, embargo=0)
    frames = []
    first_new = 0 if since is None else int(r.index.searchsorted(pd.Timestamp(since), side="right"))
    for fold in walk_forward_folds(len(r), 0, config):
        if fold.test_end <= first_new:
            continue
        fit = model.fit(r.iloc[fold.train_start : fold.train_end])
        probs = fit.filtered_probabilities(r.iloc[fold.train_start : fold.test_end]).iloc[
            -(fold.test_end - fold.test_start) :
        ]
        long = probs.rename_axis("date").reset_index().melt("date", var_name="regime", value_name="probability")
        long["regime"] = long["regime"].str.removeprefix("regime_").astype(int)
        long["train_end"] = r.index[fold.train_end - 1]
        frames.append(long)
    if not frames:
        if since is not None:
            return pd.DataFrame(columns=["date", "regime", "probability", "train_end"])
        raise ValueError(f"{len(r)} returns are too few for a {train_window}-session window plus a {gap}-session gap")
    out = pd.concat(frames, ignore_index=True).sort_values(["date", "regime"], ignore_index=True)
    return out if since is None else out[out["date"] > pd.Timestamp(since)].reset_index(drop=True)
