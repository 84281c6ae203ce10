"""Pooled L2-penalised logistic regression with Platt calibration on a held-out block.

One model per (target, horizon) is fitted on every ticker's rows of the training window at once,
on the ticker-agnostic feature columns the pooled XGBoost reads
(:func:`python_models.forecasters.boosting.feature_columns`, label columns never among them).

Features. Each column is standardised with the training rows' mean and standard deviation,
clipped to +-5 (a split or a data error must not dominate a linear score), and a missing value
(a feature's warm-up) is set to 0, the training mean. Constant columns are dropped.

Validation and calibration. The last ``validation`` share of the window's sessions is held out,
and the training rows whose label would reach into it are dropped (the purge, as the XGBoost
model does). The logistic regression is fitted on the rest; its scores on the held-out block are
then mapped to probabilities by Platt scaling (an unpenalised logistic regression of the event
on the score), so the probabilities are calibrated on data the classifier never saw. The model is
not refitted on the held-out block: the calibration would not hold for a model it was not
learnt from.
"""

from __future__ import annotations

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
        with np.errstate(all="ignore"):
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
    c : float
        Inverse L2 penalty of scikit-learn's ``LogisticRegression`` on the standardised features:
        small, as a day's features say little about the next returns.
    validation : float
        Share of the window's sessions held out for the calibration.
    refit_every : int or None
        Sessions between refits.
    """

    def __init__(
        self,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        targets: Sequence[str] = TARGETS,
        c: float = 0.01,
        validation: float = 0.2,
        refit_every: int | None = 126,
    ) -> None:
        if not 0 < validation < 0.5:
            raise ValueError(f"validation must be in (0, 0.5), got {validation}")
        if c <= 0:
            raise ValueError(f"c must be positive, got {c}")
        unknown = set(targets) - set(TARGETS)
        if unknown or not targets:
            raise ValueError(f"targets must be among {TARGETS}, got {list(targets)}")
        self.horizons = validate_horizons(horizons)
        self.targets = tuple(t for t in TARGETS if t in targets)
        self.c, self.validation, self.refit_every = c, validation, refit_every
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
            raise ValueError(f"a training window of {len(dates)} sessions is too short to hold out a calibration block")
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
            for target in self.targets:
                y = events(p, target, horizon)
                labelled = known & np.isfinite(y)
                train = labelled & (pos + horizon < cut)  # labels end before the calibration block
                calibrate = labelled & (pos >= cut)
                key = f"{target}_h{horizon}"
                y_train = y[train]
                # too few labels to fit or calibrate on (a short window at a long horizon), or nothing to
                # separate: this (target, horizon) gets no probability from this fit; the others do
                if train.sum() < MIN_FIT_ROWS or calibrate.sum() < MIN_VALIDATION_ROWS or y_train.min() == y_train.max():
                    fit.diagnostics[f"skipped_{key}"] = 1.0
                    continue
                intercept, coef = penalised_logit(z[train], y_train, self.c)
                logit = CalibratedLogit(intercept, coef, 0.0, 1.0)
                score = logit.score(z[calibrate])
                logit.platt_a, logit.platt_b = platt_scaling(score, y[calibrate])
                base = float(y[labelled].mean())
                fit.models[(target, horizon)] = logit
                fit.base_rates[(target, horizon)] = base
                fit.diagnostics[f"platt_slope_{key}"] = logit.platt_b
                held_out = np.clip(logit.probability(z[calibrate]), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
                fit.diagnostics[f"calibration_log_loss_{key}"] = float(log_losses(y[calibrate], held_out).mean())
                train_rate = float(y_train.mean())
                fit.diagnostics[f"calibration_log_loss_base_{key}"] = float(
                    log_losses(y[calibrate], np.full(calibrate.sum(), train_rate)).mean()
                )
        if not fit.models:
            raise ValueError(f"too few labelled rows in a window of {len(dates)} sessions for any target and horizon")
        fit.diagnostics["rows"] = float(len(p))
        fit.diagnostics["features"] = float(len(features))
        return fit


def penalised_logit(x: np.ndarray, event: np.ndarray, c: float) -> tuple[float, np.ndarray]:
    """Intercept and coefficients minimising ``c * sum(log loss) + |coef|^2 / 2`` (scikit-learn's
    L2 ``LogisticRegression``; the intercept is not penalised)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=500, tol=1e-8)
    model.fit(x, event)
    return float(model.intercept_[0]), model.coef_[0].astype(float)


def platt_scaling(score: np.ndarray, event: np.ndarray) -> tuple[float, float]:
    """Intercept and slope of the unpenalised logistic regression of ``event`` on ``score``
    (Platt, 1999), by Newton's method; a slope of 0 where the score does not vary."""
    s, y = np.asarray(score, float), np.asarray(event, float)
    spread = s.std()
    if not np.isfinite(spread) or spread == 0:
        rate = np.clip(y.mean(), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        return float(np.log(rate / (1 - rate))), 0.0
    design = np.column_stack([np.ones_like(s), (s - s.mean()) / spread])
    beta = np.zeros(2)
    for _ in range(100):
        p = _sigmoid(design @ beta)
        w = np.maximum(p * (1 - p), 1e-12)
        step = np.linalg.solve(design.T @ (design * w[:, None]) + 1e-12 * np.eye(2), design.T @ (y - p))
        beta += step
        if np.max(np.abs(step)) < 1e-12:
            break
    slope = beta[1] / spread
    return float(beta[0] - slope * s.mean()), float(slope)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, float)))
