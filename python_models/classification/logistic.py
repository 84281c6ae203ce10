"""Pooled L2-penalised logistic regression, probed on a held-out block, optionally Platt-calibrated.

One model per (target, horizon) is fitted on every ticker's rows of the training window at once,
on the ticker-agnostic feature columns the pooled XGBoost reads
(:func:`python_models.forecasters.boosting.feature_columns`, label columns never among them).

Features. Each column is standardised with the training rows' mean and standard deviation,
clipped to +-5 (a split or a data error must not dominate a linear score), and a missing value
(a feature's warm-up) is set to 0, the training mean. Constant columns are dropped.

Calibration. The probabilities are the penalised likelihood's: its intercept is not penalised, so
on the training labels they average to the event rate (calibrated in the large), and the penalty
keeps them near it unless the features move the odds consistently. The last ``validation`` share of
the window's sessions is held out, the training rows whose label would reach into it dropped (the
purge, as the XGBoost model does), and a probe fitted on the rest is scored there against the base
rate (the fit's diagnostics); the model kept is then refitted on every label known in the window.

With ``calibrate=True`` the probe's scores on the held-out block are instead mapped to probabilities
by Platt scaling (an unpenalised logistic regression of the event on the score) and the probe is kept,
not refitted: the calibration holds only for the model it was learnt from. On the default data it
was worse out of sample than the likelihood's own probabilities (its slope, estimated on some 150
sessions of overlapping labels, follows the last block's market), so it is off by default
(docs/models.md, ``benchmarks/classifier_settings.py``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from python_models.classification.base import (
    PROBABILITY_FLOOR,
    TARGETS,
    ClassifierFit,
    PanelClassifier,
    events,
    is_label,
    usable_labels,
    validate_classifier_panel,
)
from python_models.classification.scores import log_losses
from python_models.forecasters.base import DEFAULT_HORIZONS, validate_horizons
from python_models.forecasters.boosting import feature_columns

#: The name its probabilities are stored under.
NAME = "logistic"
#: Inverse penalties the fits choose from (PooledLogistic's ``c``).
C_GRID = (1e-4, 1e-3, 1e-2)
#: Standardised features are clipped to this many standard deviations.
CLIP = 5.0
#: Fewest labelled rows to train on and to calibrate on, per (target, horizon).
MIN_FIT_ROWS, MIN_VALIDATION_ROWS = 200, 50


@dataclass
class Standardiser:
    """Column means and scales of the training rows; ``apply`` gives the clipped z-scores."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> Standardiser:
        with warnings.catch_warnings():  # a column without a value in the window (a feature's warm-up) is dropped below
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(x, axis=0)
            scale = np.nanstd(x, axis=0)
        return cls(np.nan_to_num(mean), np.where(np.isfinite(scale) & (scale > 0), scale, np.nan))

    def apply(self, x: np.ndarray) -> np.ndarray:
        z = np.clip((x - self.mean) / self.scale, -CLIP, CLIP)
        return np.nan_to_num(z, nan=0.0)


@dataclass
class CalibratedLogit:
    """One (target, horizon): ``p = 1 / (1 + exp(-(a + b * (c0 + x . c))))``."""

    intercept: float
    coef: np.ndarray
    platt_a: float
    platt_b: float

    def score(self, z: np.ndarray) -> np.ndarray:
        return self.intercept + z @ self.coef

    def probability(self, z: np.ndarray) -> np.ndarray:
        return _sigmoid(self.platt_a + self.platt_b * self.score(z))


@dataclass
class LogisticFit(ClassifierFit):
    """The fitted models of :class:`PooledLogistic` and the standardiser they share."""

    standardiser: Standardiser | None = None
    models: dict[tuple[str, int], CalibratedLogit] = field(default_factory=dict)

    def event_probability(self, panel: pd.DataFrame, target: str, horizon: int) -> np.ndarray:
        assert self.standardiser is not None
        z = self.standardiser.apply(panel[self.features].to_numpy(float))
        return self.models[(target, horizon)].probability(z)


class PooledLogistic(PanelClassifier):
    """Calibrated pooled logistic regression (see the module docstring).

    Parameters
    ----------
    horizons : sequence of int
        Horizons fitted.
    targets : sequence of str
        Targets fitted (:data:`~python_models.classification.base.TARGETS`).
    c : float or sequence of float
        Inverse L2 penalties (scikit-learn's ``C``) on the standardised features to choose from, per
        fit and (target, horizon), by the probe's log loss on the held-out block: strong where the
        features say little (most of a day's returns), weaker where they say more.
    validation : float
        Share of the window's sessions held out to score the probe (and calibrate it, with ``calibrate``).
    refit_every : int or None
        Sessions between refits.
    calibrate : bool
        Platt-scale the probe on the held-out block instead of refitting on every label.
    """

    def __init__(
        self,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        targets: Sequence[str] = TARGETS,
        c: float | Sequence[float] = C_GRID,
        validation: float = 0.2,
        refit_every: int | None = 126,
        calibrate: bool = False,
    ) -> None:
        if not 0 < validation < 0.5:
            raise ValueError(f"validation must be in (0, 0.5), got {validation}")
        grid = tuple(float(v) for v in np.atleast_1d(c))
        if not grid or min(grid) <= 0:
            raise ValueError(f"c must be positive, got {c}")
        unknown = set(targets) - set(TARGETS)
        if unknown or not targets:
            raise ValueError(f"targets must be among {TARGETS}, got {list(targets)}")
        self.horizons = validate_horizons(horizons)
        self.targets = tuple(t for t in TARGETS if t in targets)
        self.c, self.validation, self.refit_every = grid, validation, refit_every
        self.calibrate = calibrate
        self.name = NAME

    def features_of(self, panel: pd.DataFrame) -> list[str]:
        """The feature columns read: the pooled models' ticker-agnostic columns, no label."""
        columns = [c for c in feature_columns(panel) if not is_label(c)]
        if not columns:
            raise ValueError("panel has no feature columns for the pooled classifier")
        return columns

    def fit(self, panel: pd.DataFrame) -> LogisticFit:
        p = validate_classifier_panel(panel, self.horizons, self.targets)
        dates = pd.DatetimeIndex(p["date"].unique())
        cut = int(len(dates) * (1 - self.validation))
        if cut < 100 or len(dates) - cut <= min(self.horizons) + 10:  # longer horizons may be skipped
            raise ValueError(f"a training window of {len(dates)} sessions is too short to hold out a validation block")
        pos = dates.get_indexer(p["date"])
        candidates = self.features_of(p)
        x = p[candidates].to_numpy(float)
        before = pos < cut
        standardiser = Standardiser.of(x[before])
        kept = np.isfinite(standardiser.scale)  # a constant column carries nothing
        features = [c for c, k in zip(candidates, kept, strict=True) if k]
        standardiser = Standardiser(standardiser.mean[kept], standardiser.scale[kept])
        z = standardiser.apply(x[:, kept])
        fit = LogisticFit(standardiser=standardiser, features=features)
        for horizon in self.horizons:
            known = usable_labels(p, horizon)
            # the session each label is realised at: the ticker's h-th later row (a ticker may skip sessions)
            realised = pd.Series(pos).groupby(p["ticker"].to_numpy()).shift(-horizon).to_numpy()
            for target in self.targets:
                y = events(p, target, horizon)
                labelled = known & np.isfinite(y)
                train = labelled & (realised < cut)  # labels realised before the held-out block (the purge)
                calibrate = labelled & (pos >= cut)
                key = f"{target}_h{horizon}"
                y_train = y[train]
                # too few labels to fit or calibrate on (a short window at a long horizon), or nothing to
                # separate: this (target, horizon) gets no probability from this fit; the others do
                if (
                    train.sum() < MIN_FIT_ROWS
                    or calibrate.sum() < MIN_VALIDATION_ROWS
                    or y_train.min() == y_train.max()
                ):
                    fit.diagnostics[f"skipped_{key}"] = 1.0
                    continue
                # a probe per penalty on the training rows, the one with the lowest held-out log loss kept
                best, logit = np.inf, None
                for c in self.c:
                    probe_fit = CalibratedLogit(*penalised_logit(z[train], y_train, c), 0.0, 1.0)
                    loss = _mean_log_loss(y[calibrate], probe_fit.probability(z[calibrate]))
                    if loss < best:
                        best, logit, chosen = loss, probe_fit, c
                assert logit is not None
                fit.diagnostics[f"c_{key}"] = chosen
                score = logit.score(z[calibrate])
                if self.calibrate:
                    logit.platt_a, logit.platt_b = platt_scaling(score, y[calibrate])
                    fit.diagnostics[f"platt_slope_{key}"] = logit.platt_b
                fit.models[(target, horizon)] = logit
                fit.base_rates[(target, horizon)] = float(y[labelled].mean())
                # the probe against the base rate of its own training labels, on the held-out block
                probe = _mean_log_loss(y[calibrate], logit.probability(z[calibrate]))
                base = _mean_log_loss(y[calibrate], np.full(calibrate.sum(), y_train.mean()))
                fit.diagnostics[f"held_out_log_loss_{key}"] = probe
                fit.diagnostics[f"held_out_skill_{key}"] = 1.0 - probe / base
                if not self.calibrate:  # the held-out block taught the probe nothing: refit on every known label
                    logit.intercept, logit.coef = penalised_logit(z[labelled], y[labelled], chosen)
        if not fit.models:
            raise ValueError(f"too few labelled rows in a window of {len(dates)} sessions for any target and horizon")
        fit.diagnostics["rows"] = float(len(p))
        fit.diagnostics["features"] = float(len(features))
        return fit


def penalised_logit(x: np.ndarray, event: np.ndarray, c: float) -> tuple[float, np.ndarray]:
    """Intercept and coefficients minimising ``c * sum(log loss) + |coef|^2 / 2`` (the objective of
    scikit-learn's L2 ``LogisticRegression(C=c)``; the intercept is not penalised). On the default data
    the build's classifier step took 223 s with scikit-learn's L-BFGS and 12.8 s with this Newton
    solver (docs/benchmarks.md)."""
    design = np.column_stack([np.ones(len(x)), np.asarray(x, float)])
    penalty = np.r_[0.0, np.ones(design.shape[1] - 1)]
    beta = _newton_logistic(design, np.asarray(event, float), c, penalty)
    return float(beta[0]), beta[1:]


def platt_scaling(score: np.ndarray, event: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of the unpenalised logistic regression of ``event`` on ``score``
    (Platt, 1999); a slope of 0 where the score does not vary."""
    s, y = np.asarray(score, float), np.asarray(event, float)
    spread = s.std()
    if not np.isfinite(spread) or spread == 0:
        return _logit(y.mean()), 0.0
    design = np.column_stack([np.ones_like(s), (s - s.mean()) / spread])  # standardised: a well-scaled Newton
    beta = _newton_logistic(design, y, 1.0, np.zeros(2))
    slope = beta[1] / spread
    return float(beta[0] - slope * s.mean()), float(slope)


def _newton_logistic(
    design: np.ndarray, y: np.ndarray, weight: float, penalty: np.ndarray, tol: float = 1e-10
) -> np.ndarray:
    """Coefficients minimising ``weight * sum(log loss) + sum(penalty * beta^2) / 2`` of a logistic
    regression whose first column is the intercept, by Newton's method with step halving: the
    objective is convex, and on a few thousand rows of a few dozen columns each step is one small
    linear solve. Starts at the event rate's logit, the optimum without the other columns."""

    def objective(beta: np.ndarray) -> float:
        score = design @ beta
        return float(weight * np.sum(np.logaddexp(0.0, score) - y * score) + 0.5 * np.sum(penalty * beta**2))

    beta = np.zeros(design.shape[1])
    beta[0] = _logit(y.mean())
    value = objective(beta)
    for _ in range(100):
        p = _sigmoid(design @ beta)
        gradient = weight * (design.T @ (p - y)) + penalty * beta
        hessian = weight * (design.T @ (design * (p * (1 - p))[:, None])) + np.diag(penalty + 1e-12)
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while True:  # halve the step until the objective does not rise (Newton overshoots only far off)
            candidate = beta - size * step
            new = objective(candidate)
            if new <= value + 1e-12 * abs(value) or size < 1e-8:
                break
            size /= 2
        beta, converged = candidate, value - new <= tol * max(1.0, abs(value))
        value = new
        if converged and np.max(np.abs(size * step)) < 1e-8:
            break
    return beta


def _logit(rate: float) -> float:
    """Log-odds of a rate kept inside (0, 1)."""
    r = float(np.clip(rate, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR))
    return float(np.log(r / (1 - r)))


def _mean_log_loss(event: np.ndarray, probability: np.ndarray) -> float:
    return float(log_losses(event, np.clip(probability, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)).mean())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, float)))
