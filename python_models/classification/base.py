"""The classifier interface: calibrated probabilities of the binary targets of ``marts.targets``.

A :class:`PanelClassifier` is a specification; :meth:`PanelClassifier.fit` estimates it on a
training window of the pooled panel (every ticker's rows of the window's sessions: the feature
columns of ``marts.features`` and the label columns of ``marts.targets``) and returns a
:class:`ClassifierFit`, which gives the probability of each target's event for any rows without
refitting.

Targets (their definitions live once, in dbt's ``marts.targets``):

==================  ==========================  ==============================================
target              label column                event
==================  ==========================  ==============================================
``direction``       ``fwd_direction_{h}d``      the forward ``h``-session return is positive
                                                (``fwd_direction = 1``; a return of exactly 0
                                                is not an up move)
``significant_move``  ``significant_move_{h}d``  ``|fwd_return| > k * daily_vol_21 * sqrt(h)``
==================  ==========================  ==============================================

Point in time. The label of origin ``t`` is realised ``h`` of the ticker's sessions later, so in
a training window a row's label may be used only if the ticker has ``h`` more rows in the
window (:func:`usable_labels`); nothing after the window's last session is known to the fit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from python_models.forecasters.base import DEFAULT_HORIZONS, validate_horizons

#: The binary targets, in the order they are fitted and stored.
TARGETS: tuple[str, ...] = ("direction", "significant_move")
#: Columns of the probabilities a fit gives (one row per ticker, date, target and horizon).
PROBABILITY_COLUMNS = ["ticker", "date", "target", "horizon", "probability", "base_rate"]
#: Probabilities are kept this far from 0 and 1, so a log loss is always finite.
PROBABILITY_FLOOR = 1e-6


def label_column(target: str, horizon: int) -> str:
    """The ``marts.targets`` column that holds ``target``'s label at ``horizon``."""
    if target == "direction":
        return f"fwd_direction_{horizon}d"
    if target == "significant_move":
        return f"significant_move_{horizon}d"
    raise ValueError(f"target must be one of {TARGETS}, got {target!r}")


def label_columns(horizons: Sequence[int] = DEFAULT_HORIZONS, targets: Sequence[str] = TARGETS) -> list[str]:
    """Every label column the classifiers read, targets first then horizons."""
    return [label_column(t, h) for t in targets for h in validate_horizons(horizons)]


def is_label(column: str) -> bool:
    """Whether ``column`` is a target of ``marts.targets`` (never a feature)."""
    return column.startswith(("fwd_", "significant_move_"))


def events(panel: pd.DataFrame, target: str, horizon: int) -> np.ndarray:
    """The event of ``target`` at ``horizon`` per row as 1.0 / 0.0, NaN where the label is missing."""
    # nullable integer and boolean columns (DuckDB's labels before they are realised) hold pd.NA
    raw = panel[label_column(target, horizon)].astype("float64").to_numpy(dtype=float, na_value=np.nan)
    event = raw > 0 if target == "direction" else raw != 0
    return np.where(np.isnan(raw), np.nan, event.astype(float))


def usable_labels(panel: pd.DataFrame, horizon: int) -> np.ndarray:
    """Rows whose ``horizon``-session label is realised inside ``panel``: the ticker has at least
    ``horizon`` later rows in it. In a training window these are the labels known at its end
    (the purge of the labels that reach past it)."""
    later = panel.groupby("ticker", sort=False).cumcount(ascending=False).to_numpy()
    return later >= horizon


def validate_classifier_panel(panel: pd.DataFrame, horizons: Sequence[int], targets: Sequence[str]) -> pd.DataFrame:
    """Check a pooled panel before a classifier sees it; return it sorted by (date, ticker).

    Raises
    ------
    TypeError
        If ``panel`` is not a DataFrame.
    ValueError
        If ``ticker``, ``date`` or a label column is missing, or a (ticker, date) pair repeats.
    """
    if not isinstance(panel, pd.DataFrame):
        raise TypeError(f"panel must be a pandas DataFrame, got {type(panel).__name__}")
    need = {"ticker", "date", *label_columns(horizons, targets)}
    missing = need - set(panel.columns)
    if missing:
        raise ValueError(f"panel lacks columns {sorted(missing)}")
    if panel.duplicated(["ticker", "date"]).any():
        raise ValueError("panel repeats a (ticker, date) pair")
    out = panel.assign(date=pd.to_datetime(panel["date"]))
    if not (
        out["date"].is_monotonic_increasing and out.groupby("date", sort=False)["ticker"].is_monotonic_increasing.all()
    ):
        out = out.sort_values(["date", "ticker"], kind="stable", ignore_index=True)
    return out


@dataclass
class ClassifierFit(ABC):
    """A fitted classifier: one calibrated model per (target, horizon).

    Attributes
    ----------
    base_rates : dict
        ``(target, horizon) -> share of events`` among the training window's usable labels: the
        forecast of the base rate, known at the fit.
    diagnostics : dict
        What the fit reports of itself (validation log loss and skill, chosen parameters).
    features : list of str
        The feature columns it reads, in order.
    """

    base_rates: dict[tuple[str, int], float] = field(default_factory=dict)
    diagnostics: dict[str, float] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)

    @abstractmethod
    def event_probability(self, panel: pd.DataFrame, target: str, horizon: int) -> np.ndarray:
        """Calibrated probability of the event for every row of ``panel``."""

    def predict(self, panel: pd.DataFrame) -> pd.DataFrame:
        """The probabilities of every fitted (target, horizon) for every row of ``panel``: the long
        frame of :data:`PROBABILITY_COLUMNS`, ordered by ticker, date, target and horizon."""
        missing = set(self.features) - set(panel.columns)
        if missing:
            raise ValueError(f"panel lacks the fitted feature columns {sorted(missing)}")
        keys = list(self.base_rates)
        n = len(panel)
        probability = np.empty((n, len(keys)))
        for j, (target, horizon) in enumerate(keys):
            probability[:, j] = np.clip(
                self.event_probability(panel, target, horizon), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR
            )
        out = pd.DataFrame(
            {
                "ticker": np.repeat(panel["ticker"].to_numpy(), len(keys)),
                "date": np.repeat(pd.to_datetime(panel["date"]).to_numpy(), len(keys)),
                "target": np.tile([t for t, _ in keys], n),
                "horizon": np.tile(np.array([h for _, h in keys], dtype=np.int64), n),
                "probability": probability.reshape(-1),
                "base_rate": np.tile([self.base_rates[k] for k in keys], n),
            }
        )
        return out.sort_values(["ticker", "date", "target", "horizon"], kind="stable", ignore_index=True)


class PanelClassifier(ABC):
    """A classifier pooled across tickers, refitted on each walk-forward fold.

    Attributes
    ----------
    name : str
        The name its probabilities are stored under.
    horizons, targets
        What it fits: one model per (target, horizon).
    refit_every : int or None
        Sessions between refits (None: the walk-forward's own cadence).
    """

    name: str
    horizons: tuple[int, ...] = DEFAULT_HORIZONS
    targets: tuple[str, ...] = TARGETS
    refit_every: int | None = None

    @abstractmethod
    def fit(self, panel: pd.DataFrame) -> ClassifierFit:
        """Fit on a training window of the pooled panel (see the module docstring)."""
